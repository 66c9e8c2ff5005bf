"""The embedded store's durable half: keys, tenant limits and usage in one SQLite file.

The CLI writes it whether or not the service runs; the service reads keys from it on every
cache miss, so changes apply without a restart. WAL mode lets the CLI write while the service
reads."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from ragcore.tenancy.keys import ApiKey, Limits
from ragcore.tenancy.limiter import DAY
from ragcore.tenancy.stores import DayUsage, UsageRecord
from utils.sqlite_wal import open_wal

SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY, key_hash TEXT UNIQUE NOT NULL, tenant TEXT NOT NULL,
    body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS keys_tenant ON keys (tenant);
CREATE TABLE IF NOT EXISTS tenants (tenant TEXT PRIMARY KEY, limits TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS usage (
    ts REAL NOT NULL, day TEXT NOT NULL, tenant TEXT NOT NULL, key_id TEXT NOT NULL,
    route TEXT NOT NULL, collection TEXT NOT NULL, status INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    latency_ms REAL NOT NULL, request_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS usage_tenant_day ON usage (tenant, day);
CREATE INDEX IF NOT EXISTS usage_key_day ON usage (key_id, day);
"""


def day_label(ts: float) -> str:
    """The UTC day of a timestamp, YYYY-MM-DD."""
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


class SqliteLedger:
    """Keys, tenant limits and usage records in `path` (created with its parent)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_wal(path, SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def _one(self, sql: str, args: tuple[object, ...]) -> tuple[object, ...] | None:
        with self._lock:
            row: tuple[object, ...] | None = self._db.execute(sql, args).fetchone()
            return row

    def _write(self, sql: str, args: tuple[object, ...]) -> None:
        with self._lock:
            self._db.execute(sql, args)

    # keys (KeyAdmin)
    def add_key(self, key: ApiKey) -> None:
        self._write("INSERT INTO keys VALUES (?, ?, ?, ?)",
                    (key.key_id, key.key_hash, key.tenant, json.dumps(key.to_row())))  # fmt: skip

    def update_key(self, key: ApiKey) -> None:
        self._write("UPDATE keys SET body = ? WHERE key_id = ?",
                    (json.dumps(key.to_row()), key.key_id))  # fmt: skip

    def get_key(self, key_id: str) -> ApiKey | None:
        row = self._one("SELECT body FROM keys WHERE key_id = ?", (key_id,))
        return ApiKey.from_row(json.loads(str(row[0]))) if row else None

    def find_key(self, key_hash: str) -> ApiKey | None:
        """The key with this hash, active or not."""
        row = self._one("SELECT body FROM keys WHERE key_hash = ?", (key_hash,))
        return ApiKey.from_row(json.loads(str(row[0]))) if row else None

    def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM keys WHERE ?1 IS NULL OR tenant = ?1 ORDER BY rowid", (tenant,)
            ).fetchall()
        return [ApiKey.from_row(json.loads(r[0])) for r in rows]

    def set_tenant_limits(self, tenant: str, limits: Limits) -> None:
        self._write("INSERT OR REPLACE INTO tenants VALUES (?, ?)",
                    (tenant, json.dumps(limits.__dict__)))  # fmt: skip

    def tenant_limits(self, tenant: str) -> Limits | None:
        row = self._one("SELECT limits FROM tenants WHERE tenant = ?", (tenant,))
        return Limits(**json.loads(str(row[0]))) if row else None

    # usage
    def record(self, records: list[UsageRecord]) -> None:
        """Append finished requests, in one transaction."""
        rows = [(r.ts, day_label(r.ts), r.tenant, r.key_id, r.route, r.collection, r.status,
                 r.prompt_tokens, r.completion_tokens, r.latency_ms, r.request_id)
                for r in records]  # fmt: skip
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO usage VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
            self._db.execute("COMMIT")

    def usage(self, tenant: str, since_day: str) -> list[DayUsage]:
        """Totals per day and route from `since_day` (YYYY-MM-DD) on."""
        with self._lock:
            rows = self._db.execute(
                "SELECT day, route, COUNT(*), SUM(status >= 400), SUM(prompt_tokens), "
                "SUM(completion_tokens) FROM usage WHERE tenant = ? AND day >= ? "
                "GROUP BY day, route ORDER BY day, route",
                (tenant, since_day),
            ).fetchall()
        return [DayUsage(*row) for row in rows]

    def day_tokens(self, subject: str, day: int) -> int:
        """Tokens a subject (`tenant:NAME` or `key:ID`) used on UTC day number `day`."""
        kind, _, name = subject.partition(":")
        column = "tenant" if kind == "tenant" else "key_id"
        tokens = "SUM(prompt_tokens + completion_tokens)"
        sql = f"SELECT {tokens} FROM usage WHERE {column} = ? AND day = ?"
        row = self._one(sql, (name, day_label(day * DAY)))
        return int(str(row[0] or 0)) if row else 0
