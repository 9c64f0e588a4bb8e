-- offline.lua: explicit offline of one HTTP device, or of all of the user's
-- HTTP devices (POST /v1/offline). Connection devices are not touched.
--
-- KEYS[1] pr:{pN}:<user>
-- KEYS[2] dl:{pN}
-- KEYS[3] ev:{pN}
-- ARGV[1] user
-- ARGV[2] device, or '' for every HTTP device of the user
-- ARGV[3] keyspace   '1': also DEL the devices' hb:{pN}:<user>/<device> markers.
--                    Those names are built here from the tag of KEYS[1], so
--                    they are not declared; they hash to the same slot as
--                    KEYS[1], which keeps the script valid on a cluster.
--
-- Returns {st, ver, changed}. When st becomes offline, last_seen = now and a
-- kind 1 event is published.

local user, device = ARGV[1], ARGV[2]
local now = now_ms()
local rec = rec_load(KEYS[1], user)
rec_expire_due(rec, now)

local removed = {}
if device ~= '' then
  local d = rec.devs[device]
  if d and d.kind == 'h' then removed[1] = device end
else
  for id, d in pairs(rec.devs) do
    if d.kind == 'h' then removed[#removed + 1] = id end
  end
end
for _, id in ipairs(removed) do rec_del_dev(rec, id) end

local changed = rec_settle(rec, now, KEYS[2], KEYS[3], now, false)
if ARGV[3] == '1' and #removed > 0 then
  local prefix = 'hb:' .. key_tag(KEYS[1]) .. ':' .. user .. '/'
  local keys = {}
  for i, id in ipairs(removed) do keys[i] = prefix .. id end
  redis.call('DEL', unpack(keys))
end
return rec_reply(rec, changed)
