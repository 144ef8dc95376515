"""Live A/B: which upstream serves a request, and shadow mirroring to the second one."""

from __future__ import annotations

import random
from dataclasses import dataclass

from guard.errors import ClientError
from guard.upstream import Upstream

ROUTE_HEADER = "x-guard-route"


@dataclass
class Router:
    a: Upstream
    b: Upstream | None = None
    share: float = 0.0  # share of requests routed to B
    shadow: bool = False  # mirror every request to B
    rng: random.Random | None = None

    def pick(self, forced: str | None) -> tuple[str, Upstream]:
        """The route ('a' or 'b') and its upstream; `forced` comes from the x-guard-route header."""
        if forced is not None:
            forced = forced.strip().lower()
            if forced not in ("a", "b"):
                raise ClientError(f"{ROUTE_HEADER} must be 'a' or 'b', not {forced!r}", param=ROUTE_HEADER)
            if forced == "b" and self.b is None:
                raise ClientError(f"{ROUTE_HEADER}: b, but no second upstream is configured", param=ROUTE_HEADER)
            return forced, self.b if forced == "b" and self.b is not None else self.a
        if self.b is not None and self.share > 0 and (self.rng or random).random() < self.share:
            return "b", self.b
        return "a", self.a

    @property
    def mirrors(self) -> bool:
        return self.shadow and self.b is not None
