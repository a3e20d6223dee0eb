"""Failures are blamed on the right party: one client's bad requests never eject a worker for
everybody else, a worker that really fails is ejected, and when every worker is ejected the
model still serves (panic mode)."""

from __future__ import annotations

from sglfleet.core.breaker import BreakerState
from tests.core.harness import gateway


async def test_bad_requests_on_the_only_worker_do_not_open_its_breaker() -> None:
    async with gateway(1) as gw:
        gw.engines[0].behaviour.fail_status, gw.engines[0].behaviour.fail_marker = 500, "POISON"
        for _ in range(10):  # one client: ten requests the engine fails on
            r = await gw.chat("POISON please")
            assert r.status_code == 502, r.text
        w = gw.workers()[0]
        assert w.breaker.state is BreakerState.CLOSED and w.breaker.failures == 0
        assert (await gw.chat("a good request from someone else")).status_code == 200


async def test_bad_requests_on_many_workers_fail_fast_and_eject_nobody() -> None:
    async with gateway(3) as gw:
        for e in gw.engines:
            e.behaviour.fail_status, e.behaviour.fail_marker = 500, "POISON"
        for _ in range(6):
            r = await gw.chat("POISON")
            assert r.status_code == 502
            assert "failed on 3 workers" in r.json()["error"]["message"]
        assert all(w.breaker.state is BreakerState.CLOSED and w.breaker.failures == 0 for w in gw.workers())
        assert (await gw.chat("fine")).status_code == 200


async def test_a_worker_that_fails_everything_is_ejected_and_requests_succeed_elsewhere() -> None:
    async with gateway(2) as gw:
        bad = gw.engines[0]
        bad.behaviour.fail_status = 503
        for _ in range(8):
            assert (await gw.chat("hi")).status_code == 200
        assert gw.worker_of(bad).breaker.state is BreakerState.OPEN
        assert "503" in gw.worker_of(bad).last_error
        assert gw.worker_of(gw.engines[1]).breaker.state is BreakerState.CLOSED


async def test_lone_worker_that_is_really_broken_is_blamed() -> None:
    async with gateway(1) as gw:
        gw.engines[0].behaviour.fail_status = 500  # every request, the verification probe too
        for _ in range(3):
            assert (await gw.chat("hi")).status_code == 502
        assert gw.workers()[0].breaker.state is BreakerState.OPEN


async def test_engine_4xx_is_the_clients_and_passes_through_without_retry() -> None:
    async with gateway(2) as gw:
        for e in gw.engines:
            e.behaviour.fail_status = 400
        r = await gw.chat("hi")
        assert r.status_code == 400 and r.json()["error"]["code"] == "upstream_400"
        assert sum(len(e.requests) for e in gw.engines) == 1
        assert all(w.breaker.failures == 0 for w in gw.workers())


async def test_panic_mode_routes_when_every_worker_is_ejected() -> None:
    async with gateway(2) as gw:
        for w in gw.workers():
            for _ in range(3):
                w.breaker.record_failure()
        assert all(w.breaker.state is BreakerState.OPEN for w in gw.workers())
        assert (await gw.chat("still served")).status_code == 200


async def test_injected_5xx_on_every_worker_mostly_retried_away() -> None:
    async with gateway(4, retry={"max_attempts": 3, "initial_backoff_s": 0.0, "max_backoff_s": 0.0}) as gw:
        for e in gw.engines:
            e.behaviour.fail_status, e.behaviour.fail_rate = 500, 0.6
        n = 200
        failed = 0
        for i in range(n):
            failed += (await gw.chat(f"request {i}")).status_code != 200
        # every try fails with p=0.6, three tries on distinct workers: ~22% expected; an ejected
        # worker must not make it worse (panic mode keeps all four in rotation)
        assert failed / n <= 0.40, failed


async def test_a_redirecting_worker_is_a_worker_fault_and_the_redirect_is_not_followed() -> None:
    async with gateway(2) as gw:
        bad, good = gw.engines
        bad.behaviour.fail_status = 308  # e.g. http:// answered by a redirect to https://
        for stream in (False, True):
            for _ in range(4):
                r = await gw.chat("hi", stream=stream)
                assert r.status_code == 200, r.text
        assert "redirect" in gw.worker_of(bad).last_error
        assert gw.worker_of(good).breaker.state is BreakerState.CLOSED
        assert len(good.requests) == 8  # every request was answered by the other worker


async def test_a_lone_redirecting_worker_gets_a_clear_502() -> None:
    async with gateway(1) as gw:
        gw.engines[0].behaviour.fail_status = 301
        r = await gw.chat("hi")
        assert r.status_code == 502
        assert "redirect (HTTP 301)" in r.json()["error"]["message"]
