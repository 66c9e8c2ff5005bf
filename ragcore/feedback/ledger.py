"""Answer records, ratings and the review queue in one SQLite file.

The service writes it through one actor on the head node; manage_review.py reads and marks it
whether or not the service runs (WAL mode lets both at once). Rows are keyed by tenant and
request id: a client may choose its X-Request-ID, so one tenant's id never reaches another's
record."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Literal

from ragcore.feedback.records import AnswerRecord, Feedback, FeedbackOutcome, ReviewItem
from utils.errors import NotFoundError, RequestRejectedError
from utils.sqlite_wal import open_wal

ReviewStatus = Literal["pending", "reviewed", "all"]
PRUNE_EVERY_S = 3600.0
SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    tenant TEXT NOT NULL, request_id TEXT NOT NULL, ts REAL NOT NULL, variant TEXT NOT NULL,
    body TEXT NOT NULL, PRIMARY KEY (tenant, request_id));
CREATE INDEX IF NOT EXISTS answers_ts ON answers (ts);
CREATE TABLE IF NOT EXISTS feedback (
    tenant TEXT NOT NULL, request_id TEXT NOT NULL, key_id TEXT NOT NULL, rating TEXT NOT NULL,
    comment TEXT NOT NULL, ts REAL NOT NULL, variant TEXT NOT NULL,
    PRIMARY KEY (tenant, request_id));
CREATE TABLE IF NOT EXISTS review (
    tenant TEXT NOT NULL, request_id TEXT NOT NULL, reasons TEXT NOT NULL,
    queued_at REAL NOT NULL, reviewed_at REAL, reviewer TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '', PRIMARY KEY (tenant, request_id));
CREATE INDEX IF NOT EXISTS review_pending ON review (reviewed_at, queued_at);
"""
ITEM_SQL = """
SELECT a.body, r.reasons, r.queued_at, COALESCE(f.rating, ''), COALESCE(f.comment, ''),
       r.reviewed_at, r.reviewer, r.note
FROM review r JOIN answers a USING (tenant, request_id)
LEFT JOIN feedback f USING (tenant, request_id)
"""


class SqliteFeedback:
    """The feedback ledger in `path` (created with its parent). `retain_s`: how long an answer
    that is neither queued nor rated is kept."""

    def __init__(self, path: Path | str, retain_s: float = 30 * 86400.0) -> None:
        self.path = Path(path)
        self.retain_s = retain_s
        self._db = open_wal(self.path, SCHEMA)
        self._lock = threading.Lock()
        self._next_prune = 0.0

    def close(self) -> None:
        self._db.close()

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def record(self, records: list[AnswerRecord]) -> int:
        """Store answer records (one transaction) and queue those with review reasons; returns
        how many items await review."""
        with self._lock, self._db:
            self._db.execute("BEGIN")
            for r in records:
                self._db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)",
                                 (r.tenant, r.request_id, r.ts, r.variant,
                                  json.dumps(r.to_row())))  # fmt: skip
                if r.reasons:
                    self._queue(r.tenant, r.request_id, r.reasons, r.ts)
        self._prune_now_and_then()
        return self.pending()

    def _queue(self, tenant: str, request_id: str, reasons: tuple[str, ...], ts: float) -> None:
        """Queue (or re-open) an item, adding `reasons` to those it has. Runs under the lock."""
        row = self._db.execute("SELECT reasons FROM review WHERE tenant = ? AND request_id = ?",
                               (tenant, request_id)).fetchone()  # fmt: skip
        known = json.loads(row[0]) if row else []
        merged = known + [r for r in reasons if r not in known]
        self._db.execute(
            "INSERT INTO review (tenant, request_id, reasons, queued_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (tenant, request_id) DO UPDATE SET reasons = excluded.reasons, "
            "reviewed_at = NULL", (tenant, request_id, json.dumps(merged), ts))  # fmt: skip

    def rate(self, feedback: Feedback, queue_down: bool) -> FeedbackOutcome | None:
        """Store a rating (a later one from the tenant replaces it); a thumbs-down queues the
        answer when `queue_down`. None when the tenant has no answer with this request id."""
        f = feedback
        with self._lock, self._db:
            self._db.execute("BEGIN")
            row = self._db.execute(
                "SELECT variant FROM answers WHERE tenant = ? AND request_id = ?",
                (f.tenant, f.request_id),
            ).fetchone()
            if row is None:
                return None
            self._db.execute("INSERT OR REPLACE INTO feedback VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (f.tenant, f.request_id, f.key_id, f.rating, f.comment, f.ts,
                              row[0]))  # fmt: skip
            if f.rating == "down" and queue_down:
                self._queue(f.tenant, f.request_id, ("thumbs_down",), f.ts)
            queued = self._db.execute(
                "SELECT 1 FROM review WHERE tenant = ? AND request_id = ? AND reviewed_at IS "
                "NULL", (f.tenant, f.request_id)).fetchone()  # fmt: skip
        return FeedbackOutcome(str(row[0]), queued is not None)

    def queue(
        self,
        tenant: str | None = None,
        status: ReviewStatus = "pending",
        limit: int = 50,
        request_id: str | None = None,
    ) -> list[ReviewItem]:
        """Review items: pending ones oldest first (a work queue), otherwise newest first;
        optionally one tenant's, or those of one request id."""
        where = {"pending": "r.reviewed_at IS NULL", "reviewed": "r.reviewed_at IS NOT NULL",
                 "all": "1"}[status]  # fmt: skip
        order = "ASC" if status == "pending" else "DESC"
        rows = self._rows(
            f"{ITEM_SQL} WHERE {where} AND (?1 IS NULL OR r.tenant = ?1) "
            f"AND (?2 IS NULL OR r.request_id = ?2) ORDER BY r.queued_at {order} LIMIT ?3",
            (tenant, request_id, limit))  # fmt: skip
        return [_item(row) for row in rows]

    def mark(
        self, tenant: str, request_id: str, reviewer: str, note: str, ts: float | None = None
    ) -> ReviewItem | None:
        """Mark an item reviewed; None when it is not in the queue."""
        with self._lock:
            done = self._db.execute(
                "UPDATE review SET reviewed_at = ?, reviewer = ?, note = ? WHERE tenant = ? AND "
                "request_id = ?",
                (ts or time.time(), reviewer, note, tenant, request_id),
            )
        if done.rowcount == 0:
            return None
        return self.queue(tenant, "all", 1, request_id)[0]

    def pending(self) -> int:
        """How many items await review."""
        return int(self._rows("SELECT COUNT(*) FROM review WHERE reviewed_at IS NULL")[0][0])

    def counts(self) -> dict[str, dict[str, int]]:
        """Ratings per variant: {"name@version": {"up": n, "down": n}}."""
        out: dict[str, dict[str, int]] = {}
        for variant, rating, n in self._rows(
            "SELECT variant, rating, COUNT(*) FROM feedback GROUP BY variant, rating"
        ):
            out.setdefault(variant, {"up": 0, "down": 0})[rating] = n
        return out

    def _prune_now_and_then(self) -> None:
        """Delete expired answers nobody rated or queued, at most once per PRUNE_EVERY_S."""
        now = time.time()
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_EVERY_S
        with self._lock:
            self._db.execute(
                "DELETE FROM answers WHERE ts < ? AND NOT EXISTS (SELECT 1 FROM review r WHERE "
                "r.tenant = answers.tenant AND r.request_id = answers.request_id) AND NOT "
                "EXISTS (SELECT 1 FROM feedback f WHERE f.tenant = answers.tenant AND "
                "f.request_id = answers.request_id)", (now - self.retain_s,))  # fmt: skip


def only_item(found: list[ReviewItem], request_id: str) -> ReviewItem:
    """The one review item of `found` (a queue lookup by request id, limit 2): NotFoundError
    when there is none, RequestRejectedError when two tenants used the request id."""
    if not found:
        raise NotFoundError(f"no review item with request_id {request_id!r}")
    if len(found) > 1:
        raise RequestRejectedError(f"request_id {request_id!r} is used by more than one "
                                   "tenant; name the tenant")  # fmt: skip
    return found[0]


def _item(row: tuple[Any, ...]) -> ReviewItem:
    body, reasons, queued_at, rating, comment, reviewed_at, reviewer, note = row
    return ReviewItem(AnswerRecord.from_row(json.loads(body)), tuple(json.loads(reasons)),
                      queued_at, rating, comment, reviewed_at, reviewer, note)  # fmt: skip
