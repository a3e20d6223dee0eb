"""Pick a worker and open the upstream response, retrying on another worker before the first
byte reaches the client; every failure is blamed on the right party (core/exchange.py).

For a stream, "open" includes the first body piece: a worker that answers the headers and
then hangs is still retried elsewhere, since the client has seen nothing yet.

What each failure is:
  * connect error, broken response           -> worker fault, retry elsewhere
  * no first byte within the model's deadline -> deadline (a worker fault), retry elsewhere
  * 408 / 429                                 -> no verdict (busy), retry elsewhere
  * other 4xx                                 -> request fault, passed to the client
  * 5xx                                       -> suspect, retry elsewhere; blamed later: on
    the worker if another worker then answers, on the request if every worker tried fails
    the same request, or (a lone worker) if a known-good probe succeeds on it.
Attempts are bounded (`retry.max_attempts`) and spaced by exponential backoff with jitter.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson

from sglfleet.config import GatewayConfig
from sglfleet.core.errors import (
    NoWorkerAvailable,
    Unavailable,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatus,
    UpstreamTimeout,
)
from sglfleet.core.exchange import Attempt, Exchange, Verdict
from sglfleet.core.redact import redact_text
from sglfleet.core.route import RouteContext
from sglfleet.core.worker import Worker
from sglfleet.metrics import Metrics
from sglfleet.routing.pool import ModelPool
from sglfleet.upstream import http1
from sglfleet.upstream.client import upstream_headers
from sglfleet.upstream.engine_errors import clean, is_validation_error, validation_summary

# A lone worker's 5xx is checked with a known-good request; True = the worker is fine.
Verifier = Callable[[Worker], Awaitable[bool]]

_NEUTRAL = frozenset({408, 429})


@dataclass(slots=True)
class Opened:
    attempt: Attempt
    response: http1.Response
    first: bytes  # a stream's first body piece (already read); b"" for a complete body
    attempts: int

    @property
    def worker(self) -> Worker:
        return self.attempt.worker


def backoff_s(attempt: int, initial: float, multiplier: float, cap: float, jitter: float) -> float:
    base = min(cap, initial * multiplier ** attempt)
    return max(0.0, base * (1 + random.uniform(-jitter, jitter)))


# what a read or a send to an engine may raise
UPSTREAM_ERRORS = (TimeoutError, http1.ClientError, ConnectionError)


def map_client_error(exc: BaseException, worker: Worker) -> UpstreamError:
    """The single place where client/asyncio failures become gateway errors. Messages name
    the worker by id, never by URL."""
    where = f"worker {worker.id}"
    if isinstance(exc, asyncio.TimeoutError):
        return UpstreamTimeout(f"{where} did not answer in time")
    if isinstance(exc, http1.ConnectFailed):
        return UpstreamConnectError(f"cannot reach {where}: {exc}")
    if isinstance(exc, (http1.Disconnected, ConnectionError)):
        return UpstreamConnectError(f"connection to {where} failed: {exc.__class__.__name__}")
    if isinstance(exc, http1.BodyError):
        return UpstreamProtocolError(f"{where} broke the stream off")
    return UpstreamProtocolError(f"bad response from {where}: {exc.__class__.__name__}")


def redirected(worker: Worker, status: int) -> UpstreamProtocolError:
    return UpstreamProtocolError(f"worker {worker.id} answered with a redirect (HTTP {status}); "
                                 "set its url to the address it redirects to")


def deadline_error(attempt: Attempt) -> UpstreamTimeout:
    return UpstreamTimeout(f"worker {attempt.worker.id}: {attempt.expired}")


def error_message_from(body: bytes, status: int) -> tuple[str, dict[str, object] | None]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[:300].decode("utf-8", "replace").strip()
        return f"engine returned HTTP {status}: {clean(redact_text(text)) or '(empty body)'}", None
    if isinstance(data, dict):
        err = data.get("error")
        msg = err.get("message") if isinstance(err, dict) else (err if isinstance(err, str) else None)
        msg = msg or data.get("message") or data.get("detail")
        return f"engine returned HTTP {status}: {clean(redact_text(str(msg)))[:500]}", data
    return f"engine returned HTTP {status}", None


class Dispatcher:
    def __init__(self, client: http1.Client, gateway: GatewayConfig, metrics: Metrics,
                 verify: Verifier | None = None) -> None:
        self.client = client
        self.cfg = gateway
        self.metrics = metrics
        self.verify = verify

    async def open(self, exchange: Exchange, pool: ModelPool, path: str, body: bytes, ctx: RouteContext, *,
                   stream: bool, extra_headers: dict[str, str] | None = None) -> Opened:
        retry = self.cfg.retry
        mm = self.metrics.model(pool.name)
        limits = pool.deadlines
        last: UpstreamError | None = None
        waiter = exchange.task or asyncio.current_task()  # (the task that waits for the engine)
        for n in range(retry.max_attempts):
            try:
                decision = pool.select(ctx)
            except NoWorkerAvailable:
                if last is not None:
                    break
                raise
            if decision.cache_hit is not None:
                (mm.cache_hits if decision.cache_hit else mm.cache_misses).inc()
            if ctx.panic:
                mm.panic_routes.inc()
            attempt = exchange.attempt(decision)
            limits.apply(attempt, stream=stream)
            w = decision.worker
            attempt.waiter = waiter
            err = await self._try(attempt, path, body, exchange.request_id, stream, extra_headers)
            if err is None:
                assert attempt.response is not None
                return Opened(attempt, attempt.response, attempt.first, n + 1)  # type: ignore[arg-type]
            if exchange.aborted:  # gateway shutdown: nobody's fault
                attempt.close(Verdict.CLIENT_GONE)
                raise Unavailable(f"{exchange.aborted}; retry on another instance", retry_after_s=5)
            code = err.upstream_status if isinstance(err, UpstreamStatus) else None
            if code is not None and code >= 500:
                exchange.suspect(attempt, err.message)
            elif code is not None and code not in _NEUTRAL:
                attempt.close(Verdict.REQUEST_FAULT)
                raise err  # the engine refused the request itself: the client's to fix
            elif code is not None:
                attempt.close(Verdict.REQUEST_FAULT)  # busy: no verdict on the worker
            else:
                attempt.close(Verdict.DEADLINE if attempt.expired else Verdict.WORKER_FAULT, err.message)
            self.metrics.upstream_errors.labels(pool.name, w.id, err.code or "error").inc()
            last = err
            if exchange.aborted or n + 1 >= retry.max_attempts:
                break
            ctx.exclude.add(w.id)
            mm.retries.inc()
            await asyncio.sleep(backoff_s(n, retry.initial_backoff_s, retry.multiplier,
                                          retry.max_backoff_s, retry.jitter))
        assert last is not None
        await self._blame_lone_worker(exchange)
        if exchange.suspects and len(exchange.failed_workers()) > 1:
            last.message = f"the request failed on {len(exchange.failed_workers())} workers: {last.message}"
        raise last

    async def _try(self, attempt: Attempt, path: str, body: bytes, rid: str, stream: bool,
                   extra_headers: dict[str, str] | None) -> UpstreamError | None:
        """Send and wait for the first byte; None when the response is open."""
        w = attempt.worker
        try:
            resp = await self.client.post(w.url, path, body, upstream_headers(w.auth, rid, extra_headers))
            attempt.response = resp
            if 300 <= resp.status < 400:  # not followed: a POST is not re-sent to an address we were not given
                return redirected(w, resp.status)
            if resp.status >= 400:
                data = await resp.read()
                attempt.complete = True
                msg, parsed = error_message_from(data, resp.status)
                if resp.status >= 500 and is_validation_error(msg):  # the engine's own validator: a 400
                    msg, param = validation_summary(msg)
                    err = UpstreamStatus(400, msg, parsed)
                    err.param = param
                    return err
                return UpstreamStatus(resp.status, msg, parsed)
            if stream:
                first = await resp.read_chunk()
                if not first:
                    return UpstreamProtocolError(f"worker {w.id} ended the stream before its first byte")
                attempt.first = first
            attempt.first_byte_at = attempt.last_byte_at = time.monotonic()
            return None
        except asyncio.CancelledError:
            if attempt.absorb_expiry():
                return deadline_error(attempt)
            raise
        except UPSTREAM_ERRORS as exc:
            exc.__traceback__ = None
            return deadline_error(attempt) if attempt.expired else map_client_error(exc, w)
        finally:
            attempt.waiter = None

    async def _blame_lone_worker(self, exchange: Exchange) -> None:
        """Every try failed with a 5xx on one worker only: nothing to compare with, so ask the
        worker a known-good question. It answers: the fault followed the request."""
        if not exchange.suspects or len(exchange.failed_workers()) != 1 or self.verify is None:
            return
        worker = exchange.suspects[0][0].worker
        try:
            fine = await self.verify(worker)
        except Exception:
            fine = False
        exchange.judge_suspects(worker_fault=not fine)
