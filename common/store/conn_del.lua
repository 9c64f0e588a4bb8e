-- conn_del.lua: removes a connection device when its socket closed (after the
-- leave grace), or when its receive instance died (fanout's cleanup).
--
-- KEYS[1] pr:{pN}:<user>
-- KEYS[2] dl:{pN}
-- KEYS[3] ev:{pN}
-- KEYS[4] rt:{pN}:<user>
-- ARGV[1] user
-- ARGV[2] device
-- ARGV[3] instance   remove only if this instance still holds the device: a
--                    reconnect to another instance may have replaced it, and
--                    then nothing changes
--
-- Returns {st, ver, changed}. When st becomes offline, last_seen = now and a
-- kind 1 event is published.

local user, device, inst = ARGV[1], ARGV[2], ARGV[3]
local rec = rec_load(KEYS[1], user)
local d = rec.devs[device]
if not d or d.kind ~= 'c' or d.inst ~= inst then
  if redis.call('HGET', KEYS[4], device) == inst then redis.call('HDEL', KEYS[4], device) end
  return rec_reply(rec, false)
end
local now = now_ms()
rec_expire_due(rec, now)
rec_del_dev(rec, device)
if redis.call('HGET', KEYS[4], device) == inst then redis.call('HDEL', KEYS[4], device) end
local changed = rec_settle(rec, now, KEYS[2], KEYS[3], now, false)
return rec_reply(rec, changed)
