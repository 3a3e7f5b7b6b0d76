--[[
take.lua — GCRA over the buckets of ONE subject: all or nothing, atomically.
Mirrors gcraTake() in src/reputation/gcra.ts operation for operation (same doubles).

KEYS[i]   bucket hash of the subject; all KEYS share the subject's hash tag (one slot).
          Only real keys are passed: the script touches nothing else.
ARGV[1]   now, ms since the epoch (the caller's clock, so tests can inject time)
ARGV[2+3(i-1)], ARGV[3+3(i-1)], ARGV[4+3(i-1)]
          for KEYS[i]: rate (tokens per second, > 0), burst (tokens, >= 1), cost (tokens)
Hash fields written: tat (theoretical arrival time, ms), interval (ms per token), burst.
Every key written gets a TTL: the time until the bucket is full again (then it means nothing).
Returns {0}            every bucket had room; all were taken
        {1, i, retry}  nothing taken; KEYS[i] is the denying bucket with the longest wait,
                       retry = ms until it would admit this request
]]
local now = tonumber(ARGV[1])
local staged, params = {}, {}
local worst, worstRetry = 0, -1

for i, key in ipairs(KEYS) do
  local base = 3 * (i - 1)
  local rate = tonumber(ARGV[2 + base])
  local burst = tonumber(ARGV[3 + base])
  local cost = tonumber(ARGV[4 + base])
  local interval = 1000 / rate
  local increment = interval * cost
  local tolerance = interval * burst
  local tat = staged[key]
  if tat == nil then tat = tonumber(redis.call('HGET', key, 'tat')) end
  local from = now
  if tat ~= nil and tat >= now then from = tat end
  local newTat = from + increment
  local excess = newTat - now - tolerance
  if excess > 0 then
    local retry = math.ceil(excess)
    if retry > worstRetry then worst, worstRetry = i, retry end
  else
    staged[key] = newTat
    params[key] = { interval, burst }
  end
end

if worst > 0 then return { 1, worst, worstRetry } end

for key, tat in pairs(staged) do
  redis.call('HSET', key, 'tat', string.format('%.17g', tat),
    'interval', string.format('%.17g', params[key][1]), 'burst', string.format('%.17g', params[key][2]))
  redis.call('PEXPIRE', key, math.max(1, math.ceil(tat - now)))
end
return { 0 }
