--[[
learn.lua — certain outcomes for ONE subject's score, in the order they happened: for each,
decay to its time, add its delta within ±bound, count the sample; then refresh the TTL.
Each step mirrors applyDelta() in src/reputation/scores.ts, so N pairs in one call end where
N calls with one pair each would (the store batches a moment's learning into one round trip).

KEYS[1]   score hash of the subject; fields s (score), n (samples), t (updated at, ms)
ARGV[1]   half-life, ms
ARGV[2]   bound (the score stays within [-bound, bound])
ARGV[3]   TTL of the key, ms
ARGV[4+2(i-1)], ARGV[5+2(i-1)]
          the i-th outcome: its time (ms since the epoch) and its delta
Returns the new score as a string (Lua numbers would be truncated to integers).
]]
local key = KEYS[1]
local halfLife = tonumber(ARGV[1])
local bound = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])

local cur = redis.call('HMGET', key, 's', 'n', 't')
local s = tonumber(cur[1]) or 0
local n = tonumber(cur[2]) or 0
local t = tonumber(cur[3])

for i = 4, #ARGV - 1, 2 do
  local now = tonumber(ARGV[i])
  local delta = tonumber(ARGV[i + 1])
  if t == nil then t = now end
  local dt = now - t
  if dt > 0 and s ~= 0 then s = s * math.pow(0.5, dt / halfLife) end
  s = math.min(bound, math.max(-bound, s + delta))
  n = n + 1
  if now > t then t = now end
end

redis.call('HSET', key, 's', string.format('%.17g', s), 'n', string.format('%d', n), 't', string.format('%.17g', t))
redis.call('PEXPIRE', key, ttl)
return string.format('%.17g', s)
