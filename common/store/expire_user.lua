-- expire_user.lua: expires one user's HTTP devices whose deadline has passed
-- (the keyspace path: fanout calls it on the expired event of an hb key).
--
-- KEYS[1] pr:{pN}:<user>
-- KEYS[2] dl:{pN}
-- KEYS[3] ev:{pN}
-- ARGV[1] user
--
-- Returns {st, ver, changed}. When st becomes offline, last_seen is the last
-- heartbeat of the devices that expired, and a kind 1 event is published.
-- A device heartbeated again since (its deadline is in the future) stays.

local user = ARGV[1]
local now = now_ms()
local rec = rec_load(KEYS[1], user)
rec_expire_due(rec, now)
local ls = rec.expired_seen
if ls == 0 then ls = now end
local changed = rec_settle(rec, now, KEYS[2], KEYS[3], ls, false)
return rec_reply(rec, changed)
