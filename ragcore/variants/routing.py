"""Sticky, weighted routing of requests to variants."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from utils.errors import ForbiddenError, RequestRejectedError
from utils.variant_settings import VariantSettings, VariantsSettings


def sticky_point(key: str) -> float:
    """A stable point in [0, 1) for `key`: the same person lands on the same variant on every
    replica and after every restart (Python's hash() is salted per process)."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class Route:
    """The variant a request is served by, and how it was chosen."""

    variant: VariantSettings
    forced: bool = False


class VariantRouter:
    """Picks a live or canary variant by weight, sticky by a hash of tenant and user. Weights
    are laid out in config order, so changing one weight moves only the people in the band
    between the old and the new boundary. A rolled-back canary weighs 0 until the config
    changes its version or an admin resets it."""

    def __init__(self, settings: VariantsSettings) -> None:
        self.settings = settings
        self.rolled_back: dict[str, str] = {}  # variant label -> why
        self._bands: list[tuple[float, VariantSettings]] = []
        self.update(settings)

    def update(self, settings: VariantsSettings) -> None:
        """New variants or weights (a `serve deploy` or `user_config` change): takes effect
        for the next request; requests in flight keep the variant they were given."""
        self.settings = settings
        labels = {v.label for v in settings.items}
        self.rolled_back = {k: v for k, v in self.rolled_back.items() if k in labels}
        self._layout()

    def _layout(self) -> None:
        served = [v for v in self.settings.items if v.role != "shadow"]
        weights = [0.0 if v.label in self.rolled_back else v.weight for v in served]
        total = sum(weights)
        if total <= 0:  # every canary rolled back and no live weight: the baseline serves
            served, weights, total = [self.baseline()], [1.0], 1.0
        bands, edge = [], 0.0
        for variant, weight in zip(served, weights, strict=True):
            if weight > 0:
                edge += weight / total
                bands.append((edge, variant))
        self._bands = bands

    def baseline(self) -> VariantSettings:
        """The variant canaries are compared with."""
        return self.settings.by_name()[self.settings.baseline_name()]

    def weights(self) -> dict[str, float]:
        """Each variant's share of live traffic now (rolled-back canaries at 0)."""
        shares, low = {v.name: 0.0 for v in self.settings.items}, 0.0
        for edge, variant in self._bands:
            shares[variant.name] = edge - low
            low = edge
        return shares

    def pick(self, sticky_key: str, forced: str | None = None, may_force: bool = False) -> Route:
        """The variant for this person, or the one the request forces. ForbiddenError (403)
        when the caller may not force; RequestRejectedError (422) for an unknown name."""
        if forced:
            if not may_force:
                scopes = " or ".join(self.settings.force_scopes)
                raise ForbiddenError(f"choosing a variant with X-Variant needs the {scopes} "
                                     "scope")  # fmt: skip
            variant = self.settings.by_name().get(forced)
            if variant is None:
                known = ", ".join(v.name for v in self.settings.items)
                raise RequestRejectedError(f"unknown variant {forced!r}; known: {known}")
            return Route(variant, forced=True)
        point = sticky_point(sticky_key)
        for edge, variant in self._bands:
            if point < edge:
                return Route(variant)
        return Route(self._bands[-1][1])

    def shadows(self) -> list[VariantSettings]:
        """Variants that receive a sampled copy of the traffic."""
        return [v for v in self.settings.items if v.role == "shadow"]

    def roll_back(self, variant: VariantSettings, reason: str) -> bool:
        """Set a canary's weight to 0; False when it already was."""
        if variant.label in self.rolled_back:
            return False
        self.rolled_back[variant.label] = reason
        self._layout()
        return True

    def reset(self, name: str) -> bool:
        """Serve a rolled-back canary again at its configured weight (an explicit decision)."""
        variant = self.settings.by_name().get(name)
        if variant is None or self.rolled_back.pop(variant.label, None) is None:
            return False
        self._layout()
        return True
