-- heartbeat.lua: an HTTP device's heartbeat (POST /v1/heartbeat).
--
-- KEYS[1] pr:{pN}:<user>            the user's record
-- KEYS[2] dl:{pN}                   deadlines of the partition
-- KEYS[3] ev:{pN}                   event channel of the partition
-- KEYS[4] hb:{pN}:<user>/<device>   expiry marker (written only in keyspace mode)
-- ARGV[1] user
-- ARGV[2] device
-- ARGV[3] ttl_ms                    the device lives until now + ttl
-- ARGV[4] status                    '' (keep), online|idle (activity), dnd|invisible|none (preference)
-- ARGV[5] broadcast                 '1': publish an event on every heartbeat (kind 2 unless st changed)
-- ARGV[6] keyspace                  '1': SET KEYS[4] PX ttl
-- ARGV[7..] to                      recipients (client-graph mode); none keeps the stored list
--
-- Returns {st, ver, changed}: the visible status, the version, 1 if st changed.
-- Publishes a kind 1 event when st changed (st = offline here only through
-- 'invisible'; last_seen is then now). A heartbeat that changes nothing
-- writes the device's deadline and dl, and publishes nothing.

local user, device = ARGV[1], ARGV[2]
local ttl = tonumber(ARGV[3])
local status = ARGV[4]
local now = now_ms()

local rec = rec_load(KEYS[1], user)
rec_expire_due(rec, now) -- other devices of the user that died unswept

local old = rec.devs[device]
local d = { kind = 'h', act = 'online', deadline = now + ttl, seen = now }
if old then d.act = old.act end
rec_apply_status(rec, d, status)
rec_put_dev(rec, device, d)

local to = {}
for i = 7, #ARGV do to[#to + 1] = ARGV[i] end
rec_set_to(rec, to)

local broadcast = ARGV[5] == '1'
local changed = rec_settle(rec, now, KEYS[2], KEYS[3], now, broadcast)
if broadcast then rec_publish(rec, KEYS[3], changed and 1 or 2, now) end
if ARGV[6] == '1' then redis.call('SET', KEYS[4], '1', 'PX', ttl) end
return rec_reply(rec, changed)
