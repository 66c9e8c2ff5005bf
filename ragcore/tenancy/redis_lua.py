"""The Lua scripts behind redis_store.py: MemoryLimits (limiter.py), transcribed line for line.

Each limiter operation is one script, so it is atomic across all of a request's subjects
(Redis runs one script at a time). Every script sees the same layout:
- KEYS: five per subject, in the order the subjects were given: its request log (ZSET, member
  unique per admission, score = time), token log (ZSET rid -> time), token amounts (HASH rid ->
  tokens), stream leases (ZSET rid -> expiry) and the prefix of its per-UTC-day HASH (`total`
  and `r:<rid>` -> reserved). The day key is completed inside the script because with the
  server's clock only the script knows the day; so these scripts need one Redis, not Cluster.
- ARGV[1]: now, or '' to read the server's TIME (one clock for every replica).
- ARGV[2 .. 1 + 4n]: each subject's rpm, tokens_per_minute, tokens_per_day, max_streams
  ('' = no limit); then the operation's own arguments.
Floats go back as strings ('%.17g' round-trips a double exactly; Redis would truncate a Lua
number to an integer), and infinity as 'inf'.
"""

from __future__ import annotations

PREAMBLE = """
local MINUTE, DAY, STREAM_RETRY_S = 60, 86400, 1.0
-- Idle keys vanish: a minute log is useless 60 s after its last entry, a day counter once
-- its day is over (kept a day longer than needed so no clock skew loses one early).
local MINUTE_TTL_S, DAY_TTL_S = 120, 172800
local n = #KEYS / 5
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[1])
end
local extra = 2 + 4 * n  -- index of the operation's first own argument

local function num(x)
  if x == math.huge then return 'inf' end
  return string.format('%.17g', x)
end
-- Whole numbers as digits: a plain Lua number could reach Redis as '1e+15'.
local function int(x) return string.format('%d', x) end

-- Python's float floor division (fmod first), so a time a hair before midnight falls on the
-- same day as in limiter.day_of; floor(now / DAY) can round up to the next day there.
local function day_of(t)
  local m = math.fmod(t, DAY)
  if m < 0 then m = m + DAY end
  return math.floor((t - m) / DAY + 0.5)
end
local today = day_of(now)
local day_end = (today + 1) * DAY

-- math.nextafter(x, math.inf), for a finite x: Lua 5.1 has no nextafter.
local function next_up(x)
  if x == 0 then return math.ldexp(1, -1074) end
  local m, e = math.frexp(x)  -- x = m * 2^e, 0.5 <= |m| < 1: one ulp is 2^(e - 53)
  if m == -0.5 then e = e - 1 end  -- toward zero from a power of two: half an ulp
  return x + math.ldexp(1, math.max(e - 53, -1074))
end

-- limiter.wait_until: expiry - now, nudged up until now + wait >= expiry holds in floats.
local function wait_until(expiry)
  local wait = expiry - now
  while now + wait < expiry do wait = next_up(wait) end
  return wait
end

local function key(i, j) return KEYS[(i - 1) * 5 + j] end
local function limit(i, j) return tonumber(ARGV[1 + (i - 1) * 4 + j]) end
local function day_key(i) return key(i, 5) .. today end
local function day_total(i) return tonumber(redis.call('HGET', day_key(i), 'total')) or 0 end

-- The members of a minute log that left the window: t + 60 <= now, the float sum limiter
-- compares (not t <= now - 60, which can differ in the last bit). Every such t lies below
-- now - 59, so only those scores are read.
local function expired(log)
  local out, old = {}, redis.call('ZRANGEBYSCORE', log, '-inf', num(now - MINUTE + 1), 'WITHSCORES')
  for j = 1, #old, 2 do
    if tonumber(old[j + 1]) + MINUTE <= now then out[#out + 1] = old[j] end
  end
  return out
end

-- MemoryLimits._window: drop what left the minute window and the leases that ended.
local function prune(i)
  for _, member in ipairs(expired(key(i, 1))) do redis.call('ZREM', key(i, 1), member) end
  for _, rid in ipairs(expired(key(i, 2))) do
    redis.call('ZREM', key(i, 2), rid)
    redis.call('HDEL', key(i, 3), rid)
  end
  redis.call('ZREMRANGEBYSCORE', key(i, 4), '-inf', num(now))
end

-- The token log in time order as {time, tokens}, and its sum.
local function token_entries(i)
  local amounts, flat = {}, redis.call('HGETALL', key(i, 3))
  for j = 1, #flat, 2 do amounts[flat[j]] = tonumber(flat[j + 1]) end
  local entries, used = {}, 0
  local log = redis.call('ZRANGE', key(i, 2), 0, -1, 'WITHSCORES')
  for j = 1, #log, 2 do
    local tokens = amounts[log[j]] or 0
    entries[#entries + 1] = {tonumber(log[j + 1]), tokens}
    used = used + tokens
  end
  return entries, used
end

-- A decision is {allowed, reason, retry_after_s, resource, limit, remaining, reset_s}.
local function encode(d)
  return {d[1], d[2], num(d[3]), d[4], d[5], d[6], num(d[7])}
end
local refusal = nil
-- Python's max() keeps the first of equal maxima, hence the strict comparison.
local function refuse(d)
  if refusal == nil or d[3] > refusal[3] then refusal = d end
end

local function expire_at_least(k, seconds)
  local ttl = redis.call('TTL', k)
  if ttl < seconds then redis.call('EXPIRE', k, seconds) end
end
"""

# ARGV extra: rid, unique member suffix, stream ttl ('' = no stream).
ADMIT = """
local rid, nonce, ttl = ARGV[extra], ARGV[extra + 1], tonumber(ARGV[extra + 2])
for i = 1, n do prune(i) end
for i = 1, n do
  local rpm, max_streams = limit(i, 1), limit(i, 4)
  if rpm then
    local count = redis.call('ZCARD', key(i, 1))
    if count >= rpm then
      -- The (count - rpm)th oldest request must leave the window first.
      local t = redis.call('ZRANGE', key(i, 1), count - rpm, count - rpm, 'WITHSCORES')[2]
      local wait = wait_until(tonumber(t) + MINUTE)
      refuse({0, 'requests_per_minute', wait, 'requests', rpm, 0, wait})
    end
  end
  if ttl and max_streams and redis.call('ZCARD', key(i, 4)) >= max_streams then
    refuse({0, 'streams', STREAM_RETRY_S, 'streams', max_streams, 0, STREAM_RETRY_S})
  end
end
if refusal then return encode(refusal) end
for i = 1, n do
  -- Members are unique per admission (and per position, should a subject repeat).
  redis.call('ZADD', key(i, 1), num(now), rid .. ':' .. nonce .. ':' .. i)
  redis.call('EXPIRE', key(i, 1), MINUTE_TTL_S)
  if ttl then
    redis.call('ZADD', key(i, 4), num(now + ttl), rid)
    expire_at_least(key(i, 4), math.ceil(ttl) + 1)
  end
end
local best = nil
for i = 1, n do
  local rpm = limit(i, 1)
  if rpm then
    local remaining = rpm - redis.call('ZCARD', key(i, 1))
    local oldest = redis.call('ZRANGE', key(i, 1), 0, 0, 'WITHSCORES')[2]
    if best == nil or remaining < best[6] then
      best = {1, '', 0, 'requests', rpm, remaining, wait_until(tonumber(oldest) + MINUTE)}
    end
  end
end
return encode(best or {1, '', 0, '', 0, 0, 0})
"""

# ARGV extra: rid, tokens.
RESERVE = """
local rid, tokens = ARGV[extra], tonumber(ARGV[extra + 1])
for i = 1, n do prune(i) end
for i = 1, n do
  local tpm, tpd = limit(i, 2), limit(i, 3)
  local too_large = false
  if tpm and tokens > tpm then
    refuse({0, 'too_large', math.huge, 'tokens_per_minute', tpm, 0, math.huge})
    too_large = true
  end
  if tpd and tokens > tpd then
    refuse({0, 'too_large', math.huge, 'tokens_per_day', tpd, 0, math.huge})
    too_large = true
  end
  if not too_large and tpm then
    local entries, used = token_entries(i)
    if used + tokens > tpm then
      -- limiter._minute_wait: until reservations worth the excess have left the window.
      local excess, freed, wait = used + tokens - tpm, 0, MINUTE
      for _, e in ipairs(entries) do
        freed = freed + e[2]
        if freed >= excess then wait = wait_until(e[1] + MINUTE); break end
      end
      refuse({0, 'tokens_per_minute', wait, 'tokens_per_minute', tpm,
              math.max(0, tpm - used), wait})
    end
  end
  if not too_large and tpd then
    local total = day_total(i)
    if total + tokens > tpd then
      local wait = wait_until(day_end)
      refuse({0, 'tokens_per_day', wait, 'tokens_per_day', tpd, math.max(0, tpd - total), wait})
    end
  end
end
if refusal then return encode(refusal) end
for i = 1, n do
  redis.call('ZADD', key(i, 2), num(now), rid)
  redis.call('HSET', key(i, 3), rid, int(tokens))
  redis.call('EXPIRE', key(i, 2), MINUTE_TTL_S)
  redis.call('EXPIRE', key(i, 3), MINUTE_TTL_S)
  redis.call('HINCRBY', day_key(i), 'total', int(tokens))
  redis.call('HSET', day_key(i), 'r:' .. rid, int(tokens))
  redis.call('EXPIRE', day_key(i), DAY_TTL_S)
end
local best = nil
for i = 1, n do
  local tpm, tpd = limit(i, 2), limit(i, 3)
  if tpm then
    local entries, used = token_entries(i)
    -- Remaining goes up when the oldest reservation that holds tokens leaves.
    local reset = 0
    for _, e in ipairs(entries) do
      if e[2] > 0 then reset = wait_until(e[1] + MINUTE); break end
    end
    if best == nil or tpm - used < best[6] then
      best = {1, '', 0, 'tokens_per_minute', tpm, tpm - used, reset}
    end
  end
  if tpd then
    local remaining = tpd - day_total(i)
    if best == nil or remaining < best[6] then
      best = {1, '', 0, 'tokens_per_day', tpd, remaining, day_end - now}
    end
  end
end
return encode(best or {1, '', 0, '', 0, 0, 0})
"""

# ARGV extra: rid, tokens. Idempotent: the day's reservation is consumed once.
SETTLE = """
local rid, tokens = ARGV[extra], tonumber(ARGV[extra + 1])
for i = 1, n do
  prune(i)
  local reserved = redis.call('HGET', day_key(i), 'r:' .. rid)
  if reserved then
    redis.call('HDEL', day_key(i), 'r:' .. rid)
    redis.call('HINCRBY', day_key(i), 'total', int(tokens - tonumber(reserved)))
  end
  if redis.call('ZSCORE', key(i, 2), rid) then redis.call('HSET', key(i, 3), rid, int(tokens)) end
end
return 1
"""

# ARGV extra: rid.
RELEASE = """
for i = 1, n do redis.call('ZREM', key(i, 4), ARGV[extra]) end
return 1
"""

# Four integers per subject: requests and tokens in the last minute, tokens today, streams.
SNAPSHOT = """
local out = {}
for i = 1, n do
  prune(i)
  local _, used = token_entries(i)
  out[#out + 1] = redis.call('ZCARD', key(i, 1))
  out[#out + 1] = used
  out[#out + 1] = day_total(i)
  out[#out + 1] = redis.call('ZCARD', key(i, 4))
end
return out
"""

# KEYS: key_hashes, keys, tenants; ARGV: key hash. The key's JSON and its tenant's limits
# ('' when the tenant has none), in one round trip.
LOOKUP = """
local key_id = redis.call('HGET', KEYS[1], ARGV[1])
if not key_id then return nil end
local body = redis.call('HGET', KEYS[2], key_id)
if not body then return nil end
local limits = redis.call('HGET', KEYS[3], cjson.decode(body).tenant)
return {body, limits or ''}
"""

# KEYS: keys, key_hashes; ARGV: key id, key hash, JSON. 0 when the id or hash is taken.
ADD_KEY = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 or redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1
then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
return 1
"""

# KEYS: keys, key_hashes; ARGV: key id, key hash, JSON. Only an existing key is replaced;
# the hash index follows a changed hash.
UPDATE_KEY = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return 0 end
local old_hash = cjson.decode(old).key_hash
if old_hash ~= ARGV[2] then
  redis.call('HDEL', KEYS[2], old_hash)
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""

LIMITER_SCRIPTS = {
    name: PREAMBLE + body
    for name, body in (
        ("admit", ADMIT),
        ("reserve", RESERVE),
        ("settle", SETTLE),
        ("release", RELEASE),
        ("snapshot", SNAPSHOT),
    )
}
