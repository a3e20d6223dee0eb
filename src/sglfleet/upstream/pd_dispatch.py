"""Prefill/decode dispatch, SGLang's protocol: the same body, with bootstrap_host,
bootstrap_port and a random bootstrap_room, goes to a prefill and a decode worker at once;
the decode response is what the client gets.

Failure handling the SGLang router's users asked for:
  * prefill fails before the decode answers -> the decode request is cancelled and the client
    gets a clear error naming the prefill worker;
  * decode fails -> the prefill request is aborted (its connection closed);
  * prefill fails while the decode stream runs -> the decode stream is cut with an error event.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from urllib.parse import urlsplit

import orjson

from sglfleet.config import GatewayConfig
from sglfleet.core.errors import UpstreamError, UpstreamStatus
from sglfleet.core.exchange import Attempt, Exchange, Verdict
from sglfleet.core.route import RouteContext
from sglfleet.core.worker import Worker
from sglfleet.metrics import Metrics
from sglfleet.routing.pd import PDPool
from sglfleet.upstream import http1
from sglfleet.upstream.client import upstream_headers
from sglfleet.upstream.dispatch import UPSTREAM_ERRORS, Opened, error_message_from, map_client_error, redirected


def bootstrap_fields(prefill: Worker, rng: random.Random) -> dict[str, object]:
    host = urlsplit(prefill.url).hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"  # IPv6, as SGLang expects
    return {"bootstrap_host": host, "bootstrap_port": prefill.bootstrap_port,
            "bootstrap_room": rng.getrandbits(63)}


class PDDispatcher:
    def __init__(self, client: http1.Client, gateway: GatewayConfig, metrics: Metrics) -> None:
        self.client = client
        self.metrics = metrics
        self._rng = random.Random()

    async def _post(self, attempt: Attempt, path: str, body: bytes, rid: str) -> http1.Response:
        w = attempt.worker
        try:
            resp = await self.client.post(w.url, path, body, upstream_headers(w.auth, rid))
        except UPSTREAM_ERRORS as exc:
            raise map_client_error(exc, w) from None
        attempt.response = resp
        if 300 <= resp.status < 400:
            raise redirected(w, resp.status)
        if resp.status >= 400:
            try:
                data = await resp.read()
                attempt.complete = True
            except UPSTREAM_ERRORS:
                data = b""
            msg, parsed = error_message_from(data, resp.status)
            raise UpstreamStatus(resp.status, msg, parsed)
        attempt.first_byte_at = attempt.last_byte_at = time.monotonic()
        return resp

    async def _run_prefill(self, attempt: Attempt, path: str, body: bytes, rid: str) -> None:
        try:
            resp = await self._post(attempt, path, body, rid)
            try:
                await resp.read()  # prefill output (one token) is discarded
                attempt.complete = True
            except UPSTREAM_ERRORS as exc:
                raise map_client_error(exc, attempt.worker) from None
            attempt.close(Verdict.SUCCESS)
        except UpstreamError as err:
            attempt.close(Verdict.WORKER_FAULT, f"prefill: {err.message}")
            raise
        except BaseException:  # aborted because the decode failed, or the client left
            attempt.close(Verdict.CLIENT_GONE)
            raise

    async def open(self, exchange: Exchange, pool: PDPool, path: str, data: dict[str, object],
                   ctx: RouteContext, *, stream: bool) -> Opened:
        pair = pool.select_pair(ctx)
        p_attempt = exchange.attempt(pair.prefill)  # both sides counted at dispatch time
        d_attempt = exchange.attempt(pair.decode)
        limits = pool.deadlines
        for a in (p_attempt, d_attempt):
            limits.apply(a, stream=stream)
        pw = p_attempt.worker
        rid = exchange.request_id
        body = orjson.dumps({**data, **bootstrap_fields(pw, self._rng)})
        prefill = asyncio.ensure_future(self._run_prefill(p_attempt, path, body, rid))
        decode = asyncio.ensure_future(self._post(d_attempt, path, body, rid))
        try:
            # relay as soon as the decode answers; only a prefill failure that comes first stops it
            await asyncio.wait({prefill, decode}, return_when=asyncio.FIRST_COMPLETED)
            if prefill.done() and prefill.exception() is not None:
                decode.cancel()
                with contextlib.suppress(BaseException):
                    await decode
                err = prefill.exception()
                assert isinstance(err, UpstreamError)
                err.message = f"prefill worker {pw.id} failed: {err.message}"
                d_attempt.close(Verdict.CLIENT_GONE)  # cancelled because of the prefill: no verdict
                raise err
            resp = await decode  # raises the decode error, if any
        except UpstreamError as err:
            if not prefill.done():
                prefill.cancel()  # decode failed: abort the prefill request
            if decode.done() and not decode.cancelled() and decode.exception() is err:
                code = err.upstream_status if isinstance(err, UpstreamStatus) else None
                verdict = Verdict.REQUEST_FAULT if code is not None and code < 500 else Verdict.WORKER_FAULT
                d_attempt.close(verdict, f"decode: {err.message}")
            raise
        except BaseException:
            prefill.cancel()
            decode.cancel()
            raise

        def on_prefill_done(t: asyncio.Task[None]) -> None:
            if not t.cancelled() and t.exception() is not None:
                resp.close()  # the decode can never complete without its KV: cut the stream

        prefill.add_done_callback(on_prefill_done)
        return Opened(d_attempt, resp, b"", 1)
