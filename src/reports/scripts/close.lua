--[[
close.lua — turns the open rows of one period of ONE report domain into a report job.
Idempotent: a job that exists is left alone. Keys share the domain's hash tag (one slot).

KEYS[1]  ZSET  open periods (member period start)     KEYS[2]  ZSET  jobs (member job id, score = next attempt)
KEYS[3]  HASH  rows of the period                      KEYS[4]  HASH  meta of the period
KEYS[5]  HASH  the job                                 KEYS[6]  HASH  the job's rows (KEYS[3] renamed)
ARGV[1]  period start   ARGV[2]  job id   ARGV[3]  end of the job's range (ms)   ARGV[4]  due (ms)
ARGV[5]  TTL of job keys (s)   ARGV[6]  '' for a period that ended, else now (ms): the open
         period goes on from here (reports send --now)
Returns 1 when a job was made, 0 when there was nothing to report or the job exists.
]]
if redis.call('EXISTS', KEYS[5]) == 1 then return 0 end
local made = 0
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('RENAME', KEYS[3], KEYS[6])
  local begin = redis.call('HGET', KEYS[4], 'begin') or ARGV[1]
  local policy = redis.call('HGET', KEYS[4], 'policy') or ''
  redis.call('HSET', KEYS[5], 'begin', begin, 'end', ARGV[3], 'policy', policy, 'created', ARGV[4])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
  redis.call('EXPIRE', KEYS[5], tonumber(ARGV[5]))
  redis.call('EXPIRE', KEYS[6], tonumber(ARGV[5]))
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[5]))
  made = 1
end
if ARGV[6] == '' then
  redis.call('DEL', KEYS[4])
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  local policy = redis.call('HGET', KEYS[4], 'policy')
  redis.call('DEL', KEYS[4])
  redis.call('HSET', KEYS[4], 'begin', ARGV[6])
  if policy then redis.call('HSET', KEYS[4], 'policy', policy) end
  redis.call('EXPIRE', KEYS[4], tonumber(ARGV[5]))
end
return made
