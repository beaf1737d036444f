"""Lua scripts behind ``RedisStore``'s atomic operations.

Every script gets ``KEYS[1]`` = the key index (sorted set, members are unprefixed keys, all scored
0 so they sort by bytes), ``KEYS[2]`` = the expiry index (sorted set, score = expiry time in ms by
the Redis clock; a key written again without a TTL keeps its entry until ``SWEEP`` finds it due
and drops it, which saves every write a command) and ``ARGV[1]`` = the key prefix. Data keys are
``prefix .. key``, built inside the scripts, so the store needs a standalone Redis (or Sentinel),
not Redis Cluster.
Redis runs each script atomically; arguments are validated in Python first (and a batch's
counters by the script before it writes), so no script fails halfway through.
"""

from __future__ import annotations

_HELPERS = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function store(member, value, ttl_ms)
  if ttl_ms == '' then
    -- an expiry entry it may still have is dropped by SWEEP once due (the key has no TTL)
    redis.call('SET', ARGV[1] .. member, value)
  else
    redis.call('SET', ARGV[1] .. member, value, 'PX', ttl_ms)
    redis.call('ZADD', KEYS[2], now_ms() + tonumber(ttl_ms), member)
  end
  redis.call('ZADD', KEYS[1], 0, member)
end
local function remove(member)
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZREM', KEYS[2], member)
  return redis.call('DEL', ARGV[1] .. member)
end
"""

# ARGV: prefix, key, value, ttl_ms ('' = none)
PUT = _HELPERS + "store(ARGV[2], ARGV[3], ARGV[4])\nreturn 1\n"

# ARGV: prefix, key -> 1 if it existed
DELETE = _HELPERS + "return remove(ARGV[2])\n"

# Batches pass their operations, conditions and keys to read packed into one argument each
# (``RedisStore``'s ``_pack_*``), so a commit of many keys is a handful of arguments: encoding
# dozens of small arguments was most of the client's cost of a write. Lengths are 4-byte
# big-endian; ``struct.unpack`` (Redis's Lua) reads them. An operation: 'P', key, value,
# ttl_ms ('' = none) | 'D', key | 'I', key, amount (ASCII decimal) | 'B', channel, message
# (a ``Publish``: sent after every write of the batch). A condition: key,
# has_expected ('0'/'1'), expected. A batch with an 'I' is checked whole before anything is
# written (``check_incrs``); the caller says whether it has one, so other batches skip the check.
_BATCH_HELPERS = """
-- The operations of a packed batch, decoded once: {kind, key, value or amount, ttl_ms} each.
local function read_ops(blob)
  local ops, pos, n = {}, 1, #blob
  while pos <= n do
    local kind, key, arg, ttl
    kind, key, pos = struct.unpack('>c1I4c0', blob, pos)
    if kind == 'P' then
      arg, ttl, pos = struct.unpack('>I4c0I4c0', blob, pos)
    elseif kind == 'I' or kind == 'B' then
      arg, pos = struct.unpack('>I4c0', blob, pos)
    end
    ops[#ops + 1] = {kind, key, arg, ttl}
  end
  return ops
end
-- Whether every packed condition holds: key, has_expected ('0': the key is absent), expected.
local function holds(blob)
  local pos, n = 1, #blob
  while pos <= n do
    local key, has_expected, expected
    key, has_expected, expected, pos = struct.unpack('>I4c0c1I4c0', blob, pos)
    local current = redis.call('GET', ARGV[1] .. key)
    if has_expected == '0' then
      if current then return false end
    elseif current ~= expected then
      return false
    end
  end
  return true
end
-- Append the value of each packed key (false: absent) to reply.
local function read_keys(blob, reply)
  local pos, n = 1, #blob
  while pos <= n do
    local key
    key, pos = struct.unpack('>I4c0', blob, pos)
    reply[#reply + 1] = redis.call('GET', ARGV[1] .. key)
  end
  return reply
end
local function apply_ops(ops)
  for _, op in ipairs(ops) do
    local kind, key = op[1], op[2]
    if kind == 'P' then
      store(key, op[3], op[4])
    elseif kind == 'I' then
      redis.call('INCRBY', ARGV[1] .. key, op[3])  -- keeps the TTL
      redis.call('ZADD', KEYS[1], 0, key)
    elseif kind == 'D' then
      remove(key)
    end
  end
  for _, op in ipairs(ops) do  -- the notices, once everything is written (as PUBLISH's)
    if op[1] == 'B' then
      redis.call('PUBLISH', ARGV[1] .. '\0channel:' .. op[2], op[3])
    end
  end
end
-- The number an 'I' starts from: 0 for an absent key (false), a running sum (a number), or a
-- stored counter (as store._common's _COUNTER); nil and why if the value is none of these or
-- is outside +-(2^53 - 1), the integers a Lua number (a double) holds exactly. Up to 16 digits
-- tonumber may round, but rounding is monotonic, so the comparison with the limit is exact.
local LIMIT = 9007199254740991
local function counter(value)
  if not value then return 0 end
  if type(value) == 'number' then return value end
  if value ~= '0' and not string.find(value, '^%-?[1-9][0-9]*$') then
    return nil, 'is not an integer'
  end
  local digits = #value - (string.sub(value, 1, 1) == '-' and 1 or 0)
  if digits > 16 or math.abs(tonumber(value)) > LIMIT then
    return nil, 'would overflow +-(2^53 - 1)'
  end
  return tonumber(value)
end
-- Walk the operations as apply_ops will, following each key an 'I' touches (what a 'P' or 'D'
-- earlier in the batch left, else the stored value); an error message if one would fail.
local function check_incrs(ops)
  local values = {}  -- key -> its value so far: bytes, a running sum, or false (absent)
  for _, op in ipairs(ops) do
    local kind, key = op[1], op[2]
    if kind == 'P' then
      values[key] = op[3]
    elseif kind == 'I' then
      local amount, current = op[3], values[key]
      if current == nil then current = redis.call('GET', ARGV[1] .. key) end
      local start, why = counter(current)
      if start and math.abs(start + tonumber(amount)) > LIMIT then
        why = 'would overflow +-(2^53 - 1)'
      end
      if why then return "batch Incr of '" .. key .. "' by " .. amount .. ': value ' .. why end
      values[key] = start + tonumber(amount)
    elseif kind == 'D' then
      values[key] = false
    end
  end
  return nil
end
"""

# ARGV: prefix, operations, has_incr ('1'/'')
BATCH = (
    _HELPERS
    + _BATCH_HELPERS
    + """
local ops = read_ops(ARGV[2])
if ARGV[3] == '1' then
  local failed = check_incrs(ops)
  if failed then return redis.error_reply(failed) end
end
apply_ops(ops)
return 1
"""
)

# ARGV: prefix, conditions, keys to read, operations, has_incr ('1'/'')
# -> {0} if a condition failed, else {1, value of each key read after the batch (false: absent)}
# (a table's false entries reach the client as nil; trailing ones are still counted)
BATCH_IF = (
    _HELPERS
    + _BATCH_HELPERS
    + """
if not holds(ARGV[2]) then return {0} end
local ops = read_ops(ARGV[4])
if ARGV[5] == '1' then
  local failed = check_incrs(ops)
  if failed then return redis.error_reply(failed) end
end
apply_ops(ops)
return read_keys(ARGV[3], {1})
"""
)

# ARGV: prefix, keys to read, conditions, operations, has_incr ('1'/'')
# -> {1 if applied else 0, value of each key read before the batch (false: absent)}
GET_BATCH_IF = (
    _HELPERS
    + _BATCH_HELPERS
    + """
local reply = read_keys(ARGV[2], {0})
if not holds(ARGV[3]) then return reply end
local ops = read_ops(ARGV[4])
if ARGV[5] == '1' then
  local failed = check_incrs(ops)
  if failed then return redis.error_reply(failed) end
end
apply_ops(ops)
reply[1] = 1
return reply
"""
)

# ARGV: prefix, key, has_expected ('0'/'1'), expected, new, ttl_ms -> 1 if swapped
COMPARE_AND_SET = (
    _HELPERS
    + """
local current = redis.call('GET', ARGV[1] .. ARGV[2])
if ARGV[3] == '0' then
  if current then return 0 end
elseif current ~= ARGV[4] then
  return 0
end
store(ARGV[2], ARGV[5], ARGV[6])
return 1
"""
)

# ARGV: prefix, key, amount -> new value (INCRBY keeps the TTL)
INCR = """
local value = redis.call('INCRBY', ARGV[1] .. ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[1], 0, ARGV[2])
return value
"""

# ARGV: prefix, key, ttl_ms -> 1 if the key exists
EXPIRE = (
    _HELPERS
    + """
if redis.call('PEXPIRE', ARGV[1] .. ARGV[2], ARGV[3]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], now_ms() + tonumber(ARGV[3]), ARGV[2])
return 1
"""
)

# ARGV: prefix, min, max (ZRANGEBYLEX bounds), limit, ttl_ms ('' = never expire)
# -> {number of index members read, last member read, number of keys given the expiry}
EXPIRE_PAGE = (
    _HELPERS
    + """
local members = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[2], ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))
local keep, count = ARGV[5] == '', 0
local expiry = keep and 0 or now_ms() + tonumber(ARGV[5])
for _, member in ipairs(members) do
  local key = ARGV[1] .. member
  if keep and redis.call('EXISTS', key) == 1 then
    redis.call('PERSIST', key)
    redis.call('ZREM', KEYS[2], member)
    count = count + 1
  elseif not keep and redis.call('PEXPIRE', key, ARGV[5]) == 1 then
    redis.call('ZADD', KEYS[2], expiry, member)
    count = count + 1
  else
    redis.call('ZREM', KEYS[1], member)
    redis.call('ZREM', KEYS[2], member)
  end
end
return {#members, members[#members] or '', count}
"""
)

# ARGV: prefix, min, max (ZRANGEBYLEX bounds), limit
# -> {number of index members read, last member read, {key1, value1, key2, value2, ...}}
SCAN_PAGE = """
local members = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[2], ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))
local items = {}
for _, member in ipairs(members) do
  local value = redis.call('GET', ARGV[1] .. member)
  if value then
    items[#items + 1] = member
    items[#items + 1] = value
  else
    redis.call('ZREM', KEYS[1], member)
    redis.call('ZREM', KEYS[2], member)
  end
end
return {#members, members[#members] or '', items}
"""

# ARGV: prefix, limit -> {number of expired keys dropped from the index, number of due entries
# looked at (the limit: more may be due)}
SWEEP = (
    _HELPERS
    + """
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now_ms(), 'LIMIT', 0, tonumber(ARGV[2]))
local removed = 0
for _, member in ipairs(due) do
  if redis.call('EXISTS', ARGV[1] .. member) == 0 then
    redis.call('ZREM', KEYS[1], member)
    redis.call('ZREM', KEYS[2], member)
    removed = removed + 1
  else
    local pttl = redis.call('PTTL', ARGV[1] .. member)
    if pttl < 0 then
      redis.call('ZREM', KEYS[2], member)
    else
      redis.call('ZADD', KEYS[2], now_ms() + pttl, member)
    end
  end
end
return {removed, #due}
"""
)

# KEYS[1] = the log's stream; ARGV: max_len ('' = none), ttl_ms ('' = none), max_age_ms
# ('' = none), entries... -> the offset of the last entry. Entry ids are "<offset>-0", so offsets
# are the stream's ids; each entry holds its value ('v') and when it was appended ('t', ms by the
# Redis clock). A trimmed stream keeps at least one entry, which carries the last offset (an
# entry just appended is never older than max_age). Trimming by age reads the oldest entries
# until the first young one (just the oldest when nothing is old): an append pays for what it
# trims.
LOG_APPEND = """
local last = 0
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if top[1] then last = tonumber(string.match(top[1][1], '^(%d+)')) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 4, #ARGV do
  last = last + 1
  redis.call('XADD', KEYS[1], string.format('%d-0', last), 'v', ARGV[i], 't', now)
end
if ARGV[1] ~= '' then redis.call('XTRIM', KEYS[1], 'MAXLEN', tonumber(ARGV[1])) end
if ARGV[3] ~= '' then
  local cutoff = now - tonumber(ARGV[3])
  local young = nil
  local count = 1  -- usually the oldest entry is young: read just it
  while not young do
    local page = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', count)
    count = 64
    local old = {}
    for _, entry in ipairs(page) do
      local at = 0
      for j = 1, #entry[2], 2 do
        if entry[2][j] == 't' then at = tonumber(entry[2][j + 1]) end
      end
      if at >= cutoff then young = entry[1] break end
      old[#old + 1] = entry[1]
    end
    if #old > 0 then redis.call('XDEL', KEYS[1], unpack(old)) end
    if not page[1] then break end
  end
end
if ARGV[2] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return last
"""

# ARGV: prefix, channel, message -> the listeners reached. A script, not a plain PUBLISH, so it
# goes in the same round trip as the script calls of its turn (``ScriptPipe``).
PUBLISH = "return redis.call('PUBLISH', ARGV[1] .. '\\0channel:' .. ARGV[2], ARGV[3])\n"

ALL = {
    "PUT": PUT,
    "DELETE": DELETE,
    "BATCH": BATCH,
    "BATCH_IF": BATCH_IF,
    "GET_BATCH_IF": GET_BATCH_IF,
    "COMPARE_AND_SET": COMPARE_AND_SET,
    "INCR": INCR,
    "EXPIRE": EXPIRE,
    "EXPIRE_PAGE": EXPIRE_PAGE,
    "SCAN_PAGE": SCAN_PAGE,
    "SWEEP": SWEEP,
    "LOG_APPEND": LOG_APPEND,
    "PUBLISH": PUBLISH,
}
