-- common.lua: helpers shared by every store script. store.c prepends this
-- file to each script body before loading it (pr_store_script_body()), so the
-- helpers are locals of every script; on its own it does nothing.
--
-- A user's record is the hash pr:{pN}:<user> (docs/data-model.md):
--   d:<device> = h|<activity>|<deadline_ms>|<seen_ms>   HTTP heartbeater
--   d:<device> = c|<activity>|<instance>                WebSocket connection
--   pref (dnd|invisible, absent = none), rs, st, ver, ls,
--   to (client-graph mode: the recipients named by the last heartbeat, space separated)
-- Scripts load it once (HGETALL), change it in memory, and write back only
-- the fields that changed.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function split(s, sep)
  local out = {}
  local from = 1
  while true do
    local i = string.find(s, sep, from, true)
    if not i then
      out[#out + 1] = string.sub(s, from)
      return out
    end
    out[#out + 1] = string.sub(s, from, i - 1)
    from = i + 1
  end
end

local function dev_parse(v)
  local f = split(v, '|')
  if f[1] == 'h' then
    return { kind = 'h', act = f[2], deadline = tonumber(f[3]) or 0, seen = tonumber(f[4]) or 0 }
  end
  return { kind = 'c', act = f[2], inst = f[3] or '' }
end

local function dev_format(d)
  if d.kind == 'h' then
    return 'h|' .. d.act .. '|' .. string.format('%d', d.deadline) .. '|' .. string.format('%d', d.seen)
  end
  return 'c|' .. d.act .. '|' .. d.inst
end

-- Loads the record at `key` for `user`.
local function rec_load(key, user)
  local flat = redis.call('HGETALL', key)
  local rec = {
    key = key, user = user, devs = {}, set = {}, del = {}, http_dirty = false,
    pref = nil, rs = 'offline', st = 'offline', ver = 0, ls = 0, to = '', expired_seen = 0,
  }
  for i = 1, #flat, 2 do
    local f, v = flat[i], flat[i + 1]
    if string.sub(f, 1, 2) == 'd:' then
      rec.devs[string.sub(f, 3)] = dev_parse(v)
    elseif f == 'pref' then
      rec.pref = v
    elseif f == 'rs' then
      rec.rs = v
    elseif f == 'st' then
      rec.st = v
    elseif f == 'ver' then
      rec.ver = tonumber(v) or 0
    elseif f == 'ls' then
      rec.ls = tonumber(v) or 0
    elseif f == 'to' then
      rec.to = v
    end
  end
  rec.old_st, rec.old_rs = rec.st, rec.rs
  return rec
end

local function rec_put_dev(rec, id, d)
  local old = rec.devs[id]
  -- dl follows HTTP devices only: an HTTP device changed, or was replaced by a connection
  if d.kind == 'h' or (old and old.kind == 'h') then rec.http_dirty = true end
  rec.devs[id] = d
  rec.set['d:' .. id] = dev_format(d)
  rec.del['d:' .. id] = nil
end

local function rec_del_dev(rec, id)
  local d = rec.devs[id]
  if not d then return false end
  rec.devs[id] = nil
  rec.set['d:' .. id] = nil
  rec.del['d:' .. id] = true
  if d.kind == 'h' then rec.http_dirty = true end
  return true
end

-- Removes the HTTP devices whose deadline has passed; remembers the latest
-- heartbeat among them (the user's last_seen if this makes it offline).
-- Returns how many were removed.
local function rec_expire_due(rec, now)
  local due = {}
  for id, d in pairs(rec.devs) do
    if d.kind == 'h' and d.deadline <= now then due[#due + 1] = id end
  end
  for _, id in ipairs(due) do
    local seen = rec.devs[id].seen
    if seen > rec.expired_seen then rec.expired_seen = seen end
    rec_del_dev(rec, id)
  end
  return #due
end

-- Applies a status word from a client: activity of device `d` or the preference.
local function rec_apply_status(rec, d, status)
  if status == 'online' or status == 'idle' then
    d.act = status
  elseif status == 'dnd' or status == 'invisible' then
    if rec.pref ~= status then
      rec.pref = status
      rec.set.pref = status
    end
  elseif status == 'none' then
    if rec.pref then
      rec.pref = nil
      rec.set.pref = nil
      rec.del.pref = true
    end
  end
end

-- The recipients list (client-graph mode) as a Lua array for the event.
local function rec_to_list(rec)
  local out = {}
  if rec.to ~= '' then out = split(rec.to, ' ') end
  return out
end

local function rec_set_to(rec, list)
  if #list == 0 then return end
  local s = table.concat(list, ' ')
  if s ~= rec.to then
    rec.to = s
    rec.set.to = s
  end
end

-- Publishes one event in the format of proto/README.md:
-- [1, kind, user, status, last_seen, version, ts_ms, to]
local function rec_publish(rec, chan, kind, now)
  local ls = 0
  if rec.st == 'offline' then ls = rec.ls end
  local msg = cmsgpack.pack({ 1, kind, rec.user, rec.st, ls, rec.ver, now, rec_to_list(rec) })
  redis.call('PUBLISH', chan, msg)
end

-- Derives rs and st from the devices and the preference; on a change of st,
-- bumps the version, sets last_seen when becoming offline (`ls_offline`),
-- and publishes a kind 1 event on `chan` unless `quiet` (the caller then
-- publishes itself). Writes the changed fields, updates dl (the user's
-- earliest HTTP deadline) when HTTP devices changed. Returns true if st changed.
local function rec_settle(rec, now, dl_key, chan, ls_offline, quiet)
  local live, online = false, false
  local earliest = nil
  for _, d in pairs(rec.devs) do
    if d.kind == 'c' or d.deadline > now then
      live = true
      if d.act == 'online' then online = true end
    end
    if d.kind == 'h' and (earliest == nil or d.deadline < earliest) then earliest = d.deadline end
  end
  local rs = 'offline'
  if live then rs = online and 'online' or 'idle' end
  local st = rs
  if rs ~= 'offline' then
    if rec.pref == 'invisible' then
      st = 'offline'
    elseif rec.pref == 'dnd' then
      st = 'dnd'
    end
  end
  if rs ~= rec.old_rs then
    rec.rs = rs
    rec.set.rs = rs
  end
  local changed = st ~= rec.old_st
  if changed then
    rec.st = st
    rec.ver = rec.ver + 1
    rec.set.st = st
    rec.set.ver = string.format('%d', rec.ver)
    if st == 'offline' then
      rec.ls = ls_offline
      rec.set.ls = string.format('%d', ls_offline)
    end
  end

  local args = {}
  for f, v in pairs(rec.set) do
    args[#args + 1] = f
    args[#args + 1] = v
  end
  if #args > 0 then redis.call('HSET', rec.key, unpack(args)) end
  local dels = {}
  for f in pairs(rec.del) do dels[#dels + 1] = f end
  if #dels > 0 then redis.call('HDEL', rec.key, unpack(dels)) end

  if rec.http_dirty then
    if earliest then
      redis.call('ZADD', dl_key, earliest, rec.user)
    else
      redis.call('ZREM', dl_key, rec.user)
    end
  end
  if changed then
    -- chg:{pN}: user -> ms of its last visible change, so that a fanout
    -- worker taking the partition over re-delivers what was published while
    -- nobody listened. One entry per user: bounded by the partition's users.
    -- Not trimmed here: the partition's owner removes what it has delivered
    -- (services/fanout/changes.c), however long fanout was away.
    -- The name carries dl's tag: same slot.
    local chg = 'chg:' .. string.match(dl_key, '{[^}]*}')
    redis.call('ZADD', chg, now, rec.user)
  end
  if changed and not quiet then rec_publish(rec, chan, 1, now) end
  return changed
end

-- The reply of the single-user scripts: {st, ver, changed}.
local function rec_reply(rec, changed)
  return { rec.st, rec.ver, changed and 1 or 0 }
end

-- The hash tag "{pN}" of a key such as "dl:{p12}" or "pr:{p12}:alice".
local function key_tag(key)
  return string.match(key, '{[^}]*}')
end
