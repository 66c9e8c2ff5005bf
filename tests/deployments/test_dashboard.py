"""Every metric the service exports has a panel in the shipped Grafana dashboard."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_exported_metric_is_on_the_dashboard() -> None:
    exported = set(re.findall(r'"(rag_[a-z_]+)"', (ROOT / "deployments/metrics.py").read_text()))
    dashboard = json.loads((ROOT / "ops/grafana-dashboard.json").read_text())
    queries = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    assert exported and all(f"ray_{name}" in queries for name in exported), sorted(
        name for name in exported if f"ray_{name}" not in queries
    )
