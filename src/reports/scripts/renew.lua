--[[
renew.lua — extends a lock only while the caller holds it.
KEYS[1]  STRING the lock   ARGV[1]  token   ARGV[2]  new TTL (ms)
Returns 1 when renewed.
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
