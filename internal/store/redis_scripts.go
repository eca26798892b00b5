package store

import "github.com/redis/go-redis/v9"

// The Lua scripts behind every change that touches more than one key. Redis
// runs a script atomically: no other client's command runs in the middle of
// one, and a crash of onair cannot split one, so that a room never exists
// without its presenter and a count never disagrees with the viewer set (the
// count is the viewer set's SCARD, read in the same script).
//
// Key layout (see keys in redis.go and the README), for a prefix P:
//
//	P rooms           hash: room id -> presenter email (the index of rooms)
//	P room:{id}       hash: title, profileUrl, presenter, pipeline, createdAt, owner
//	P viewers:{id}    set of viewer emails
//	P user:{email}    hash: room, role, endpoint, session, node (viewers in a cluster)
//	P owner:{owner}   string with a TTL: the owner's heartbeat
//
// Scripts build user, room and viewer keys of other rooms from the prefix
// passed in ARGV, so they need a single Redis (not Redis Cluster).
//
// Errors are returned as the replies ONAIR_NOTFOUND and ONAIR_EXISTS.

// createRoom: KEYS rooms, room, viewers, presenter's user;
// ARGV id, title, profileUrl, presenter, pipeline, createdAt, owner, endpoint, session.
var createRoomScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('EXISTS', KEYS[4]) == 1 then
  return redis.error_reply('ONAIR_EXISTS')
end
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[2], 'title', ARGV[2], 'profileUrl', ARGV[3], 'presenter', ARGV[4],
  'pipeline', ARGV[5], 'createdAt', ARGV[6], 'owner', ARGV[7])
redis.call('HSET', KEYS[4], 'room', ARGV[1], 'role', 'presenter', 'endpoint', ARGV[8], 'session', ARGV[9])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
return 'OK'
`)

// deleteRoom: KEYS rooms, room, viewers; ARGV id, pipeline (empty for any),
// prefix of user keys. Replies with {email, endpoint, session, node} of each
// viewer removed. When the room's record is gone (deleted by hand), what is left of
// it (index entry, viewer set, user records that still point at it) is
// removed all the same, and the reply is ONAIR_NOTFOUND.
var deleteRoomScript = redis.NewScript(`
local exists = redis.call('EXISTS', KEYS[2]) == 1
if exists and ARGV[2] ~= '' and redis.call('HGET', KEYS[2], 'pipeline') ~= ARGV[2] then
  return redis.error_reply('ONAIR_NOTFOUND')
end
local presenter
if exists then
  presenter = redis.call('HGET', KEYS[2], 'presenter')
else
  presenter = redis.call('HGET', KEYS[1], ARGV[1])
end
local out = {}
for _, email in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local key = ARGV[3] .. email
  local u = redis.call('HMGET', key, 'room', 'role', 'endpoint', 'session', 'node')
  if u[1] == ARGV[1] and u[2] == 'viewer' then
    table.insert(out, {email, u[3] or '', u[4] or '', u[5] or ''})
    redis.call('DEL', key)
  end
end
if presenter then
  local key = ARGV[3] .. presenter
  local u = redis.call('HMGET', key, 'room', 'role')
  if u[1] == ARGV[1] and u[2] == 'presenter' then
    redis.call('DEL', key)
  end
end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('HDEL', KEYS[1], ARGV[1])
if not exists then
  return redis.error_reply('ONAIR_NOTFOUND')
end
return out
`)

// restoreRoom: KEYS rooms, room, viewers; ARGV id, prefix of user keys,
// title, profileUrl, presenter, pipeline, createdAt, owner, presenter's
// endpoint, presenter's session, then email, endpoint, session of each
// viewer. Replies with the emails of viewers recorded in another room.
var restoreRoomScript = redis.NewScript(`
local id, prefix = ARGV[1], ARGV[2]
local presenter, pipeline = ARGV[5], ARGV[6]
if redis.call('EXISTS', KEYS[2]) == 1 and redis.call('HGET', KEYS[2], 'pipeline') ~= pipeline then
  return redis.error_reply('ONAIR_EXISTS')
end
local pu = redis.call('HMGET', prefix .. presenter, 'room', 'role')
if pu[1] and (pu[1] ~= id or pu[2] ~= 'presenter') then
  return redis.error_reply('ONAIR_EXISTS')
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[3])
  redis.call('HSET', KEYS[2], 'title', ARGV[3], 'profileUrl', ARGV[4], 'presenter', presenter,
    'pipeline', pipeline, 'createdAt', ARGV[7], 'owner', ARGV[8])
end
redis.call('HSET', KEYS[1], id, presenter)
if not pu[1] then
  redis.call('HSET', prefix .. presenter, 'room', id, 'role', 'presenter', 'endpoint', ARGV[9], 'session', ARGV[10])
end
local skipped = {}
for i = 11, #ARGV, 3 do
  local email = ARGV[i]
  local key = prefix .. email
  local u = redis.call('HMGET', key, 'room', 'role')
  if u[1] and (u[1] ~= id or u[2] ~= 'viewer') then
    table.insert(skipped, email)
  else
    if not u[1] then
      redis.call('HSET', key, 'room', id, 'role', 'viewer', 'endpoint', ARGV[i+1], 'session', ARGV[i+2])
    end
    redis.call('SADD', KEYS[3], email)
  end
end
return skipped
`)

// addViewer: KEYS room, viewers, user; ARGV id, email, endpoint, session, node.
// Replies with the room's fields and its new count.
var addViewerScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('ONAIR_NOTFOUND')
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  return redis.error_reply('ONAIR_EXISTS')
end
redis.call('HSET', KEYS[3], 'room', ARGV[1], 'role', 'viewer', 'endpoint', ARGV[3], 'session', ARGV[4])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[3], 'node', ARGV[5])
end
redis.call('SADD', KEYS[2], ARGV[2])
return {redis.call('HGETALL', KEYS[1]), redis.call('SCARD', KEYS[2])}
`)

// removeViewer: KEYS user, viewers; ARGV id, email.
var removeViewerScript = redis.NewScript(`
local u = redis.call('HMGET', KEYS[1], 'room', 'role')
if u[1] ~= ARGV[1] or u[2] ~= 'viewer' then
  return redis.error_reply('ONAIR_NOTFOUND')
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
return 'OK'
`)

// bindSession: KEYS user; ARGV session.
var bindSessionScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('ONAIR_NOTFOUND')
end
redis.call('HSET', KEYS[1], 'session', ARGV[1])
return 'OK'
`)

// moveViewer: KEYS user; ARGV id, node, endpoint.
var moveViewerScript = redis.NewScript(`
local u = redis.call('HMGET', KEYS[1], 'room', 'role')
if u[1] ~= ARGV[1] or u[2] ~= 'viewer' then
  return redis.error_reply('ONAIR_NOTFOUND')
end
redis.call('HSET', KEYS[1], 'node', ARGV[2], 'endpoint', ARGV[3])
return 'OK'
`)

// room: KEYS room, viewers. Replies with the room's fields and its count.
var roomScript = redis.NewScript(`
local h = redis.call('HGETALL', KEYS[1])
if #h == 0 then
  return redis.error_reply('ONAIR_NOTFOUND')
end
return {h, redis.call('SCARD', KEYS[2])}
`)

// rooms: KEYS rooms; ARGV prefix of room keys, prefix of viewer keys. Replies
// with {id, fields, count} of each room, in one consistent snapshot; index
// entries whose record is gone are left out.
var roomsScript = redis.NewScript(`
local out = {}
for _, id in ipairs(redis.call('HKEYS', KEYS[1])) do
  local h = redis.call('HGETALL', ARGV[1] .. id)
  if #h > 0 then
    table.insert(out, {id, h, redis.call('SCARD', ARGV[2] .. id)})
  end
end
return out
`)

// viewers: KEYS room, viewers; ARGV prefix of user keys. Replies with
// {email, endpoint, session, node} of each viewer.
var viewersScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('ONAIR_NOTFOUND')
end
local out = {}
for _, email in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local u = redis.call('HMGET', ARGV[1] .. email, 'endpoint', 'session', 'node')
  table.insert(out, {email, u[1] or '', u[2] or '', u[3] or ''})
end
return out
`)
