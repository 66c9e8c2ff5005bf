"""The shipped Grafana dashboard and the exported metrics agree both ways: every metric the
service exports has a panel, and every series a panel queries is one the service (or Ray
Serve) exports, with the suffix its type gets in Prometheus."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers import dashboard_queries

ROOT = Path(__file__).resolve().parents[2]
DECLARED = re.compile(r'metrics\.(Counter|Histogram|Gauge)\(\s*"(rag_[a-z_]+)"')
SUFFIXES = {"Counter": ("_total",), "Histogram": ("_bucket", "_count", "_sum"), "Gauge": ("",)}
# Ray Serve's own series that panels use (Ray exports them under this name on every node).
RAY_SERIES = {"ray_serve_deployment_replica_healthy"}


def exported_metrics() -> dict[str, str]:
    """Every custom metric deployments/metrics.py declares, with its type."""
    source = (ROOT / "deployments/metrics.py").read_text(encoding="utf-8")
    return {name: kind for kind, name in DECLARED.findall(source)}


def exported_series() -> set[str]:
    """The Prometheus series names of those metrics (Ray prefixes them with `ray_`)."""
    return {f"ray_{name}{suffix}" for name, kind in exported_metrics().items()
            for suffix in SUFFIXES[kind]}  # fmt: skip


def test_every_exported_metric_is_on_the_dashboard() -> None:
    queries = " ".join(dashboard_queries())
    exported = exported_metrics()
    assert len(exported) > 20  # the declarations were found
    missing = sorted(name for name in exported if f"ray_{name}" not in queries)
    assert missing == []


def test_every_panel_queries_series_that_exist() -> None:
    known = exported_series() | RAY_SERIES
    queried = {name for expr in dashboard_queries()
               for name in re.findall(r"\b(ray_[a-z_]+)\b", expr)}  # fmt: skip
    assert queried and sorted(queried - known) == []
