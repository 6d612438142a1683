"""Request pacing for teacher endpoints: token-bucket rate limits and replica choice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class RateLimiter:
    """A token bucket refilled at `per_minute / 60` units a second, holding a second's worth.

    A caller may take more than is left (a response longer than expected): the bucket goes
    into debt and later callers wait it off, so the average rate still holds.
    """

    per_minute: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    _level: float = field(default=0.0, init=False)
    _updated: float | None = field(default=None, init=False)

    @property
    def capacity(self) -> float:
        return max(1.0, self.per_minute / 60)

    def _refill(self) -> None:
        now = self.clock()
        if self._updated is None:
            self._level = self.capacity
        else:
            self._level = min(
                self.capacity, self._level + (now - self._updated) * self.per_minute / 60
            )
        self._updated = now

    async def acquire(self, amount: float = 1.0) -> None:
        """Wait until `amount` may be spent, then spend it."""
        need = min(amount, self.capacity) - 1e-9  # float slack: a wait never rounds to 0
        self._refill()
        while self._level < need:
            await self.sleep(max((need - self._level) * 60 / self.per_minute, 1e-3))
            self._refill()
        self._level -= amount

    def charge(self, amount: float) -> None:
        """Spend after the fact (tokens only known once the response arrives)."""
        self._refill()
        self._level -= amount


@dataclass
class Replica:
    url: str
    in_flight: int = 0
    down_until: float = 0.0
    failures: int = 0


@dataclass
class Replicas:
    """Several base URLs serving one model: least-busy healthy replica first; a replica that
    fails (connection error, 5xx) rests for `cooldown_s` while others take its traffic."""

    urls: list[str]
    cooldown_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    pool: list[Replica] = field(init=False)

    def __post_init__(self) -> None:
        self.pool = [Replica(url.rstrip("/")) for url in self.urls]

    def pick(self, avoid: Replica | None = None) -> Replica:
        now = self.clock()
        healthy = [r for r in self.pool if r.down_until <= now and r is not avoid]
        if not healthy:
            healthy = [r for r in self.pool if r.down_until <= now] or self.pool
            healthy = sorted(healthy, key=lambda r: r.down_until)[:1]
        return min(healthy, key=lambda r: r.in_flight)

    def failed(self, replica: Replica) -> None:
        replica.failures += 1
        if len(self.pool) > 1:
            replica.down_until = self.clock() + self.cooldown_s

    def succeeded(self, replica: Replica) -> None:
        replica.failures = 0
        replica.down_until = 0.0
