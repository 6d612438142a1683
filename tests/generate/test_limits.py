import asyncio

from curate.generate.limits import RateLimiter, Replicas


class FakeClock:
    """A clock the test moves by hand (sleeping advances it)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_rate_limiter_holds_the_rate():
    clock = FakeClock()
    limiter = RateLimiter(600, clock=clock, sleep=clock.sleep)  # 10 a second

    async def take(count: int) -> None:
        for _ in range(count):
            await limiter.acquire()

    asyncio.run(take(10))
    assert clock.now == 0  # a second's worth is there at once
    asyncio.run(take(50))
    assert 4.9 <= clock.now <= 5.1


def test_debt_from_long_responses_is_waited_off():
    clock = FakeClock()
    tokens = RateLimiter(6000, clock=clock, sleep=clock.sleep)  # 100 tokens a second
    tokens.charge(500)  # a response far longer than a second's budget: 400 in debt
    asyncio.run(tokens.acquire(10))
    assert 4.05 <= clock.now <= 4.15  # (400 + 10) tokens at 100 a second


def test_replicas_least_busy_and_cooldown():
    clock = FakeClock()
    replicas = Replicas(["http://a/v1", "http://b/v1/"], cooldown_s=30, clock=clock)
    a, b = replicas.pool
    assert b.url == "http://b/v1"
    a.in_flight = 3
    assert replicas.pick() is b
    replicas.failed(b)
    assert replicas.pick() is a  # b rests
    clock.now = 31
    assert replicas.pick() is b
    replicas.failed(a)
    replicas.failed(b)
    assert replicas.pick() in (a, b)  # all down: still returns the one back first
