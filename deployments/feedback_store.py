"""The feedback ledger behind every Ingress replica: one named Ray actor on the head node that
owns feedback.db under auth.state_dir (durable whatever auth.store is)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ragcore.feedback.desk import LedgerCall
from ragcore.feedback.ledger import SqliteFeedback
from utils.settings import ServiceSettings

NAMESPACE = "rag"
LEDGER_FILE = "feedback.db"


def ledger_path(config: ServiceSettings) -> Path:
    """Where the ledger lives (manage_review.py opens the same file)."""
    return Path(config.auth.state_dir) / LEDGER_FILE


def actor_name(path: Path) -> str:
    """One actor per ledger file, as for the tenant store."""
    return "feedback-" + hashlib.sha256(str(path).encode()).hexdigest()[:12]


def actor_ledger(config: ServiceSettings) -> LedgerCall:
    """Calls on the named actor, created by the first replica that asks: detached, so it
    outlives that replica; restarted by Ray if it dies (the file keeps everything written)."""
    import ray

    path = ledger_path(config)
    retain_s = config.feedback.retain_days * 86400
    actor: Any = ray.remote(SqliteFeedback).options(
        name=actor_name(path), namespace=NAMESPACE, get_if_exists=True, lifetime="detached",
        num_cpus=0, max_restarts=-1, max_concurrency=1,
        resources={"node:__internal_head__": 0.001},
    ).remote(str(path), retain_s)  # fmt: skip

    def call(method: str, *args: Any) -> Any:
        return getattr(actor, method).remote(*args)

    return call
