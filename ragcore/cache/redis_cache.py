"""The answer cache in Redis: the same Redis as the rate limits when auth.store is redis.

An answer is a string with a TTL; a sorted set orders answers by insertion so that the exact
tier stays within `max_entries` (the oldest go first); each scope's semantic records are a
list trimmed to the newest `max_semantic_per_scope`, expiring with its newest answer. One Lua
script stores all three atomically."""

from __future__ import annotations

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ragcore.cache.store import BEAT_TTL_S
from utils.variant_settings import CacheSettings

PREFIX = "rag:cache:"
ORDER = PREFIX + "order"  # zset: answer key -> insertion time (ms)
ROLLBACKS = PREFIX + "rollbacks"  # hash: variant label -> reason
BEATS = PREFIX + "beats"  # hash: replica -> its live traffic (LiveBoard)
BEAT_TIMES = PREFIX + "beat-times"  # zset: replica -> its last beat (s), to forget dead ones

PUT = """
local answer_key, order, scope_key = KEYS[1], KEYS[2], KEYS[3]
local value, entry, ttl_ms, max_entries, max_scope = ARGV[1], ARGV[2], tonumber(ARGV[3]),
  tonumber(ARGV[4]), tonumber(ARGV[5])
local t = redis.call('TIME')
local now_ms = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('SET', answer_key, value, 'PX', ttl_ms)
redis.call('ZADD', order, now_ms, answer_key)
local extra = redis.call('ZCARD', order) - max_entries
if extra > 0 then
  local old = redis.call('ZRANGE', order, 0, extra - 1)
  redis.call('ZREMRANGEBYRANK', order, 0, extra - 1)
  redis.call('DEL', unpack(old))
end
if entry ~= '' then
  redis.call('LPUSH', scope_key, entry)
  redis.call('LTRIM', scope_key, 0, max_scope - 1)
  redis.call('PEXPIRE', scope_key, ttl_ms)
end
return 1
"""

# Both keys expire when every replica has gone; a replica silent for the TTL is forgotten.
BEAT = """
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], t[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"""
BEATS_READ = """
local t = redis.call('TIME')
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', t[1] - tonumber(ARGV[1]))
if #gone > 0 then
  redis.call('HDEL', KEYS[1], unpack(gone))
  redis.call('ZREM', KEYS[2], unpack(gone))
end
return redis.call('HGETALL', KEYS[1])
"""


def _bytes(value: bytes | str) -> bytes:
    """A reply as bytes (the client is made without decode_responses: answers are bytes)."""
    return value.encode("utf-8") if isinstance(value, str) else value


class RedisCacheStore:
    """`CacheStore` on Redis (asyncio); every call has the cache's own deadline (the answer
    cache turns a failure into a miss)."""

    def __init__(self, url: str, settings: CacheSettings) -> None:
        self.settings = settings
        self._redis = redis.asyncio.Redis.from_url(
            url, socket_timeout=settings.store_timeout_s,
            socket_connect_timeout=settings.store_timeout_s, retry=Retry(NoBackoff(), 0),
        )  # fmt: skip
        self._put = self._redis.register_script(PUT)
        self._beat = self._redis.register_script(BEAT)
        self._beats = self._redis.register_script(BEATS_READ)

    async def get(self, key: str) -> bytes | None:
        value = await self._redis.get(PREFIX + "a:" + key)
        return None if value is None else _bytes(value)

    async def put(self, key: str, value: bytes, scope: str, entry: bytes) -> None:
        s = self.settings
        await self._put(keys=[PREFIX + "a:" + key, ORDER, PREFIX + "s:" + scope],
                        args=[value, entry, int(s.ttl_s * 1000), s.max_entries,
                              s.max_semantic_per_scope])  # fmt: skip

    async def candidates(self, scope: str) -> list[bytes]:
        entries = await self._redis.lrange(PREFIX + "s:" + scope, 0, -1)
        return [_bytes(e) for e in entries]

    async def rollbacks(self) -> dict[str, str]:
        raw = await self._redis.hgetall(ROLLBACKS)
        return {_bytes(k).decode(): _bytes(v).decode() for k, v in raw.items()}

    async def set_rollback(self, label: str, reason: str) -> None:
        await self._redis.hsetnx(ROLLBACKS, label, reason)

    async def clear_rollback(self, label: str) -> None:
        await self._redis.hdel(ROLLBACKS, label)

    async def beat(self, member: str, value: bytes) -> None:
        await self._beat(keys=[BEATS, BEAT_TIMES], args=[member, value, int(BEAT_TTL_S)])

    async def beats(self) -> dict[str, bytes]:
        flat = await self._beats(keys=[BEATS, BEAT_TIMES], args=[int(BEAT_TTL_S)])
        return {_bytes(flat[i]).decode(): _bytes(flat[i + 1]) for i in range(0, len(flat), 2)}
