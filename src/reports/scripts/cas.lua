--[[
cas.lua — one fenced state change of a report job (src/reports/sender.ts has the state machine).

KEYS[1]  STRING  the job's lock (holds the token of the node working on it)
KEYS[2]  HASH    the job
ARGV[1]  token; '' = the change needs no lock (it names its own attempt in ARGV[3])
ARGV[2]  field   ARGV[3]  allowed current values, '|'-separated; '' in the list = absent,
         a trailing '*' = prefix   ARGV[4]  new value
ARGV[5]  lock TTL (ms) to renew while the token holds it, or 0
Returns 1 when changed, 0 when the lock or the current value did not allow it.
]]
if ARGV[1] ~= '' then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
  if tonumber(ARGV[5]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
end
local current = redis.call('HGET', KEYS[2], ARGV[2]) or ''
local ok = false
for allowed in string.gmatch(ARGV[3] .. '|', '([^|]*)|') do
  if allowed == current then ok = true break end
  if string.sub(allowed, -1) == '*' and string.sub(current, 1, #allowed - 1) == string.sub(allowed, 1, -2) and current ~= '' then ok = true break end
end
if not ok then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
return 1
