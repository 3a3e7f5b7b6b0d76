--[[
release.lua — gives back what take.lua took for ONE subject (the transaction died early).
Mirrors gcraRelease() in src/reputation/gcra.ts. Never beyond a full bucket: a bucket that
is full again is deleted.

KEYS[i]   bucket hash of the subject (one hash tag, one slot)
ARGV[1]   now, ms since the epoch
ARGV[2+3(i-1)], ARGV[3+3(i-1)], ARGV[4+3(i-1)]
          for KEYS[i]: rate, burst, cost exactly as given to take.lua
Returns the number of buckets that still hold a backlog.
]]
local now = tonumber(ARGV[1])
local left = 0
for i, key in ipairs(KEYS) do
  local base = 3 * (i - 1)
  local rate = tonumber(ARGV[2 + base])
  local cost = tonumber(ARGV[4 + base])
  local tat = tonumber(redis.call('HGET', key, 'tat'))
  if tat ~= nil then
    local newTat = tat - (1000 / rate) * cost
    if newTat <= now then
      redis.call('DEL', key)
    else
      redis.call('HSET', key, 'tat', string.format('%.17g', newTat))
      redis.call('PEXPIRE', key, math.max(1, math.ceil(newTat - now)))
      left = left + 1
    end
  end
end
return left
