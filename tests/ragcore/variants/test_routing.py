"""Sticky weighted routing, forcing, rollbacks."""

from __future__ import annotations

import pytest

from ragcore.variants.routing import VariantRouter, sticky_point
from utils.errors import ForbiddenError, RequestRejectedError
from utils.variant_settings import VariantSettings, VariantsSettings


def _router(a: float = 80, b: float = 20, role: str = "live") -> VariantRouter:
    return VariantRouter(VariantsSettings(items=[
        VariantSettings(name="a", weight=a), VariantSettings(name="b", weight=b, role=role),
        VariantSettings(name="s", role="shadow")]))  # fmt: skip


def test_shares_follow_the_weights_and_a_shadow_gets_none() -> None:
    router = _router()
    picks = [router.pick(f"t\x00user{i}").variant.name for i in range(5000)]
    assert 0.78 < picks.count("a") / 5000 < 0.82
    assert "s" not in picks and router.weights() == pytest.approx({"a": 0.8, "b": 0.2, "s": 0})


def test_one_person_always_gets_one_variant() -> None:
    router, other = _router(), _router()  # another replica: same answer
    for i in range(200):
        key = f"tenant\x00user{i}"
        assert {router.pick(key).variant.name for _ in range(5)} == {other.pick(key).variant.name}


def test_changing_a_weight_moves_only_the_people_in_between() -> None:
    before, after = _router(80, 20), _router(90, 10)
    moved = [k for k in (f"t\x00u{i}" for i in range(3000))
             if before.pick(k).variant.name != after.pick(k).variant.name]  # fmt: skip
    assert all(before.pick(k).variant.name == "b" for k in moved)
    assert 0.07 < len(moved) / 3000 < 0.13
    assert all(0.8 <= sticky_point(k) < 0.9 for k in moved)


def test_forcing_needs_permission_and_a_known_name() -> None:
    router = _router()
    assert router.pick("k", "s", may_force=True).variant.name == "s"
    with pytest.raises(ForbiddenError, match="admin or test"):
        router.pick("k", "b", may_force=False)
    with pytest.raises(RequestRejectedError, match="known: a, b, s"):
        router.pick("k", "zzz", may_force=True)


def test_a_rolled_back_canary_gets_no_traffic_until_reset_or_a_new_version() -> None:
    router = _router(role="canary")
    canary = router.settings.by_name()["b"]
    assert router.roll_back(canary, "error_rate") and not router.roll_back(canary, "again")
    assert {router.pick(f"u{i}").variant.name for i in range(500)} == {"a"}
    assert router.reset("b") and router.weights()["b"] == pytest.approx(0.2)
    router.roll_back(canary, "error_rate")
    bumped = VariantsSettings(items=[VariantSettings(name="a", weight=80),
                                     VariantSettings(name="b", weight=20, version="2",
                                                     role="canary")])  # fmt: skip
    router.update(bumped)
    assert router.rolled_back == {} and router.weights()["b"] == pytest.approx(0.2)


def test_settings_refuse_duplicate_names_and_no_weight() -> None:
    with pytest.raises(ValueError, match="unique"):
        VariantsSettings(items=[VariantSettings(name="a"), VariantSettings(name="a")])
    with pytest.raises(ValueError, match="weight above 0"):
        VariantsSettings(items=[VariantSettings(name="a", weight=0)])
    with pytest.raises(ValueError, match="retrieval may set only"):
        VariantSettings(name="a", retrieval={"bm25_k1": 2})
