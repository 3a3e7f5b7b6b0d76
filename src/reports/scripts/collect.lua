--[[
collect.lua — counts one message in the open period of ONE report domain (RFC 9990 rows).
All keys carry the domain's hash tag ({domain}), so they share one slot (Redis Cluster).

KEYS[1]  ZSET  open periods of the domain: member = period start, score = period end (ms)
KEYS[2]  HASH  rows of that period: field = encoded row, value = message count
KEYS[3]  HASH  meta of that period: begin (period start, or the time an earlier part was closed), policy (JSON, last wins)
ARGV[1]  period start (ms)       ARGV[2]  period end (ms)
ARGV[3]  row field              ARGV[4]  published policy, JSON
ARGV[5]  TTL of the keys (s): period plus the retry window
Returns the row's new count.
]]
local ttl = tonumber(ARGV[5])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local n = redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
redis.call('HSETNX', KEYS[3], 'begin', ARGV[1])
redis.call('HSET', KEYS[3], 'policy', ARGV[4])
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('EXPIRE', KEYS[3], ttl)
return n
