from __future__ import annotations

import asyncio

import pytest

from sglfleet.config import BreakerConfig
from sglfleet.core.auth import check_admin_key, check_api_key
from sglfleet.core.breaker import BreakerState, CircuitBreaker
from sglfleet.core.errors import Forbidden, Overloaded, Unauthorized, Unavailable
from sglfleet.routing.limiter import Limiter
from sglfleet.upstream.dispatch import backoff_s


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_breaker_closed_open_half_open_closed() -> None:
    clock = Clock()
    b = CircuitBreaker(BreakerConfig(failure_threshold=3, success_threshold=2, open_s=10, half_open_max_requests=1), clock)
    for _ in range(2):
        b.record_failure()
    assert b.state is BreakerState.CLOSED and b.allows()
    b.record_failure()
    assert b.state is BreakerState.OPEN and not b.allows()
    clock.t = 10
    assert b.state is BreakerState.HALF_OPEN and b.allows()
    b.acquire()
    assert not b.allows()  # only one probe at a time in half-open
    b.record_success()
    assert b.state is BreakerState.HALF_OPEN and b.allows()
    b.acquire()
    b.record_success()
    assert b.state is BreakerState.CLOSED


def test_breaker_half_open_failure_reopens() -> None:
    clock = Clock()
    b = CircuitBreaker(BreakerConfig(failure_threshold=1, open_s=5), clock)
    b.record_failure()
    clock.t = 5
    assert b.state is BreakerState.HALF_OPEN
    b.acquire()
    b.record_failure()
    assert b.state is BreakerState.OPEN and not b.allows()


def test_success_resets_consecutive_failures() -> None:
    b = CircuitBreaker(BreakerConfig(failure_threshold=2))
    b.record_failure()
    b.record_success()
    b.record_failure()
    assert b.state is BreakerState.CLOSED


def test_backoff_grows_and_is_capped() -> None:
    vals = [backoff_s(a, 0.1, 2.0, 1.0, 0.0) for a in range(6)]
    assert vals == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert all(0.08 <= backoff_s(0, 0.1, 2, 1, 0.2) <= 0.12 for _ in range(50))


async def test_limiter_fifo_queue_full_and_timeout() -> None:
    lim = Limiter(limit=1, max_queue=1, queue_timeout_s=0.2)
    await lim.acquire()
    waiter = asyncio.create_task(lim.acquire())
    await asyncio.sleep(0.01)
    assert lim.queued == 1
    with pytest.raises(Overloaded) as e:
        await lim.acquire()
    assert e.value.status == 429 and e.value.headers["retry-after"]
    lim.release()  # slot passes to the waiter
    await waiter
    assert lim.active == 1 and lim.queued == 0
    with pytest.raises(Unavailable):
        await lim.acquire()  # queued, then times out
    assert lim.queued == 0
    lim.release()
    assert lim.active == 0


async def test_limiter_cancelled_waiter_leaves_queue() -> None:
    lim = Limiter(limit=1, max_queue=5, queue_timeout_s=5)
    await lim.acquire()
    t = asyncio.create_task(lim.acquire())
    await asyncio.sleep(0.01)
    t.cancel()
    with pytest.raises(asyncio.CancelledError):
        await t
    assert lim.queued == 0
    lim.release()
    assert lim.active == 0


def test_auth_rules() -> None:
    check_api_key(None, (), ())  # no keys: open
    with pytest.raises(Unauthorized):
        check_api_key(None, ("k",), ())
    with pytest.raises(Unauthorized):
        check_api_key("Bearer nope", ("k",), ())
    with pytest.raises(Unauthorized):
        check_api_key("Basic k", ("k",), ())
    check_api_key("Bearer k", ("k",), ())
    check_api_key("bearer adm", ("k",), ("adm",))  # admin keys work on /v1 too
    with pytest.raises(Forbidden):
        check_admin_key("Bearer k", ("adm",), ("k",))
    with pytest.raises(Forbidden):
        check_admin_key(None, (), ("k",))  # API keys set, no admin keys: admin disabled
    check_admin_key("Bearer adm", ("adm",), ("k",))
    check_admin_key(None, (), ())  # fully local, unauthenticated setup
