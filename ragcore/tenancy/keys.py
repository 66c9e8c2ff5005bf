"""API keys: high-entropy secrets shown once, stored only as their SHA-256."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from utils.auth_settings import NAME_RE

KEY_PREFIX = "rk-"
# Scopes a key can hold; `admin` reads every tenant's usage and manages variants; `test` may
# pick a variant with X-Variant (as admin may). Routes name the scope they need.
SCOPES = ("search", "ask", "chat", "usage", "admin", "test")
DEFAULT_SCOPES = ("search", "ask", "chat", "usage")


def new_secret() -> str:
    """A new key: 256 random bits, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """What the store keeps. The secret has 256 random bits, so one SHA-256 cannot be reversed
    or guessed; a slow password hash would add latency to every request and no safety."""
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def new_key_id() -> str:
    """The public id of a key (listed, logged, used to rotate or revoke it)."""
    return "key_" + secrets.token_hex(6)


def check_name(kind: str, value: str) -> str:
    """A tenant or collection name, or ValueError saying what is allowed."""
    if not NAME_RE.match(value):
        raise ValueError(f"{kind} {value!r} must be 1-64 letters, digits, '_', '.' or '-', "
                         "starting with a letter or digit")  # fmt: skip
    return value


@dataclass(frozen=True)
class Limits:
    """Limits of one subject (a tenant or a key); None means no limit at this level."""

    rpm: int | None = None
    tokens_per_minute: int | None = None
    tokens_per_day: int | None = None
    max_streams: int | None = None

    def __post_init__(self) -> None:
        for value in astuple(self):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"a limit must be a whole number of at least 1, not {value!r}")

    def over(self, fallback: Limits) -> Limits:
        """These limits, with `fallback`'s where these are unset."""
        pairs = zip(astuple(self), astuple(fallback), strict=True)
        return Limits(*(mine if mine is not None else theirs for mine, theirs in pairs))

    @property
    def any(self) -> bool:
        return any(v is not None for v in astuple(self))


def astuple(limits: Limits) -> tuple[int | None, ...]:
    """The four limits in field order."""
    return (limits.rpm, limits.tokens_per_minute, limits.tokens_per_day, limits.max_streams)


@dataclass(frozen=True)
class ApiKey:
    """A stored key: never the secret, only its hash."""

    key_id: str
    key_hash: str
    tenant: str
    name: str = ""
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    collections: tuple[str, ...] = ()  # readable collections; the first is the default
    limits: Limits = field(default_factory=Limits)
    created_at: float = field(default_factory=time.time)
    expires_at: float | None = None
    revoked_at: float | None = None

    def active(self, now: float) -> bool:
        """Usable now: not revoked and not expired."""
        ends = [t for t in (self.expires_at, self.revoked_at) if t is not None]
        return all(now < t for t in ends)

    def to_row(self) -> dict[str, Any]:
        """A JSON-able dict (limits nested)."""
        row = asdict(self)
        row["scopes"] = list(self.scopes)
        row["collections"] = list(self.collections)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ApiKey:
        """The inverse of `to_row`."""
        limits = Limits(**(row.get("limits") or {}))
        return cls(**{**row, "scopes": tuple(row["scopes"]),
                      "collections": tuple(row["collections"]), "limits": limits})  # fmt: skip

    def public(self) -> dict[str, Any]:
        """What `list` shows: everything but the hash."""
        row = self.to_row()
        row.pop("key_hash")
        return row

    def with_times(self, **times: float | None) -> ApiKey:
        """A copy with `expires_at` / `revoked_at` changed."""
        return replace(self, **times)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant, the key and what it may do (never the secret)."""

    tenant: str
    key_id: str
    scopes: frozenset[str]
    collections: tuple[str, ...]
    key_limits: Limits
    tenant_limits: Limits

    def may(self, scope: str) -> bool:
        """Whether this key holds `scope` (admin does not imply the others)."""
        return scope in self.scopes
