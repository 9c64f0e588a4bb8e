-- conn_set.lua: registers a WebSocket connection device held by a receive
-- instance, or updates its status.
--
-- KEYS[1] pr:{pN}:<user>
-- KEYS[2] dl:{pN}          (updated if the device id was an HTTP device)
-- KEYS[3] ev:{pN}
-- KEYS[4] rt:{pN}:<user>   device -> instance (the user->machine mapping)
-- ARGV[1] user
-- ARGV[2] device
-- ARGV[3] instance         the receive instance id
-- ARGV[4] status           '' (keep), online|idle (activity), dnd|invisible|none (preference)
-- ARGV[5] relay            '1': a heartbeat frame with broadcast = "heartbeats":
--                          publish a kind 2 event when st did not change
-- ARGV[6..] to             recipients (client-graph mode); none keeps the stored list
--
-- Returns {st, ver, changed}; publishes a kind 1 event when st changed.

local user, device, inst, status = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now = now_ms()
local rec = rec_load(KEYS[1], user)
rec_expire_due(rec, now)

local old = rec.devs[device]
local d = { kind = 'c', act = 'online', inst = inst }
if old then d.act = old.act end
rec_apply_status(rec, d, status)
if not old or old.kind ~= 'c' or old.act ~= d.act or old.inst ~= inst then
  rec_put_dev(rec, device, d)
end
if not old or old.kind ~= 'c' or old.inst ~= inst then redis.call('HSET', KEYS[4], device, inst) end

if #ARGV >= 6 then
  local to = {}
  for i = 6, #ARGV do to[#to + 1] = ARGV[i] end
  rec_set_to(rec, to)
end

local relay = ARGV[5] == '1'
local changed = rec_settle(rec, now, KEYS[2], KEYS[3], now, relay)
if relay then rec_publish(rec, KEYS[3], changed and 1 or 2, now) end
return rec_reply(rec, changed)
