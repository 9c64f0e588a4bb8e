-- sweep.lua: expires the due HTTP devices of one partition (the partition
-- owner runs it every sweep interval).
--
-- KEYS[1] dl:{pN}     user -> earliest deadline (ms)
-- KEYS[2] ev:{pN}
-- KEYS[3] own:{pN}    the partition's owner (worker id)
-- ARGV[1] worker id   '' skips the owner check (tests, tools)
-- ARGV[2] limit       at most this many users per call
--
-- The records pr:{pN}:<user> of the due users are found in dl and their names
-- built here from the tag of KEYS[1], so they are not declared: they hash to
-- the same slot as the declared keys, which keeps the script valid on a
-- cluster (it runs on the node holding the partition's slot).
--
-- Returns {owner, users, events}: owner 0 (and nothing done) when own:{pN}
-- is not the worker; users expired; events published. For each user that
-- becomes offline, last_seen is the last heartbeat of its expired devices.

local worker = ARGV[1]
if worker ~= '' and redis.call('GET', KEYS[3]) ~= worker then return { 0, 0, 0 } end
local limit = tonumber(ARGV[2])
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit)
local prefix = 'pr:' .. key_tag(KEYS[1]) .. ':'
local events = 0
for _, user in ipairs(due) do
  local rec = rec_load(prefix .. user, user)
  rec_expire_due(rec, now)
  rec.http_dirty = true -- dl must move past now even if nothing was due (a stale entry)
  local ls = rec.expired_seen
  if ls == 0 then ls = now end
  if rec_settle(rec, now, KEYS[1], KEYS[2], ls, false) then events = events + 1 end
end
return { 1, #due, events }
