"""The Serve mode a locally started Ray gets."""

from __future__ import annotations

import pytest

from utils.ray_runtime import SERVE_HIGH_THROUGHPUT_ENV, ha_proxy_ingress, serve_env


def test_a_local_ray_gets_serves_high_throughput_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SERVE_HIGH_THROUGHPUT_ENV:
        monkeypatch.delenv(name, raising=False)
    env = serve_env()
    assert env["RAY_SERVE_ENABLE_HA_PROXY"] == env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"
    assert ha_proxy_ingress()


def test_an_operators_own_values_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_SERVE_ENABLE_HA_PROXY", "0")
    monkeypatch.setenv("RAY_SERVE_THROUGHPUT_OPTIMIZED", "0")
    env = serve_env()
    assert env["RAY_SERVE_ENABLE_HA_PROXY"] == env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "0"
    assert not ha_proxy_ingress()
