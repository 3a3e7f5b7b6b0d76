--[[
learn.lua — one certain outcome for ONE subject's score: decay to now, add the delta within
±bound, count the sample, refresh the TTL. Mirrors applyDelta() in src/reputation/scores.ts.

KEYS[1]   score hash of the subject; fields s (score), n (samples), t (updated at, ms)
ARGV[1]   now, ms since the epoch
ARGV[2]   half-life, ms
ARGV[3]   delta
ARGV[4]   bound (the score stays within [-bound, bound])
ARGV[5]   TTL of the key, ms
Returns the new score as a string (Lua numbers would be truncated to integers).
]]
local key = KEYS[1]
local now = tonumber(ARGV[1])
local halfLife = tonumber(ARGV[2])
local delta = tonumber(ARGV[3])
local bound = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])

local cur = redis.call('HMGET', key, 's', 'n', 't')
local s = tonumber(cur[1]) or 0
local n = tonumber(cur[2]) or 0
local t = tonumber(cur[3]) or now

local dt = now - t
if dt > 0 and s ~= 0 then s = s * math.pow(0.5, dt / halfLife) end
s = math.min(bound, math.max(-bound, s + delta))
if now > t then t = now end

redis.call('HSET', key, 's', string.format('%.17g', s), 'n', string.format('%d', n + 1), 't', string.format('%.17g', t))
redis.call('PEXPIRE', key, ttl)
return string.format('%.17g', s)
