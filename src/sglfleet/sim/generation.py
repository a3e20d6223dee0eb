"""The generation routes: parse, apply faults and PD role, run through the engine, answer.

One coroutine serves `/v1/chat/completions`, `/v1/completions` and `/generate`; only the
parser and the `Formatter` differ. A client disconnect cancels the handler (aiohttp's
`handler_cancellation`) or fails a write; either way the `finally` aborts the engine
request, so the simulated GPU stops generating for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from sglfleet.sim import fast, features
from sglfleet.sim.config import SimConfig
from sglfleet.sim.pd import BootstrapError, Room
from sglfleet.sim.protocol import (
    BadRequest,
    error_response,
    parse_chat,
    parse_completion,
    parse_generate,
    read_json,
)
from sglfleet.sim.request import GenParams, SimRequest
from sglfleet.sim.responses import Formatter, Kind
from sglfleet.sim.tokenizer import OutputSampler, join_pieces

if TYPE_CHECKING:
    from sglfleet.sim.server import SimWorker

PARSERS: dict[Kind, Callable[[dict[str, Any], SimConfig], GenParams]] = {
    "chat": parse_chat,
    "completion": parse_completion,
    "generate": parse_generate,
}
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


class _Dropped(Exception):
    """The crash fault closed the client connection."""


async def handle(worker: SimWorker, request: web.Request, kind: Kind) -> web.StreamResponse:
    cfg = worker.config
    try:
        body = await read_json(request)
        params = PARSERS[kind](body, cfg)
        feats = features.parse(body, kind == "chat") if kind != "generate" else None
        worker.engine.check_fits(len(params.prompt_ids), params.max_new_tokens)
        if cfg.role != "both" and params.bootstrap is None:
            raise BadRequest(
                f"this is a {cfg.role} worker: bootstrap_host, bootstrap_port "
                f"and bootstrap_room are required"
            )
    except (BadRequest, ValueError) as exc:
        return error_response(400, str(exc))
    boot = params.bootstrap if cfg.role != "both" else None
    if cfg.role == "prefill":
        assert boot is not None
        worker.hub.begin(boot.room)
        params = GenParams(**{**params.__dict__, "max_new_tokens": 1})
    if worker.memory.asleep:
        return error_response(503, f"memory released ({', '.join(worker.memory.released)}); "
                                   "call /resume_memory_occupation")
    req: SimRequest | None = None
    try:
        faults = worker.faults
        if faults.config.any_request_fault:
            if faults.starting():
                return error_response(503, "the server is starting (sim slow start)")
            status = faults.pick_error()
            if status is not None:
                return error_response(status, f"injected error {status} (sim fault)")
            spike = faults.spike_seconds(cfg.time_scale)
            if spike:
                await asyncio.sleep(spike)
        if feats is not None:
            def after_token(n: int) -> None:
                if faults.config.crash_after_tokens is not None and faults.crash_due(n):
                    _crash(worker, request)

            return await features.respond(request, body, feats, chat=kind == "chat", model=cfg.model_name,
                                          max_tokens=params.max_new_tokens, after_token=after_token)
        if cfg.fast:
            return await fast.respond(worker, request, kind, params)
        room: Room | None = None
        if cfg.role == "decode":
            assert boot is not None
            try:
                room = await worker.hub.wait(boot, cfg.bootstrap_timeout_s, worker.session())
            except BootstrapError as exc:
                return error_response(exc.status, str(exc))
        req = SimRequest(
            params,
            OutputSampler(cfg.seed, params.seed_ids or params.prompt_ids, params.offset),
            prefilled=room is not None,
        )
        if room is not None:
            req.cached_tokens = room.cached_tokens
        worker.engine.submit(req)
        fmt = Formatter(kind, cfg.model_name, req, params.include_usage)
        try:
            if params.stream:
                return await _stream(worker, request, req, fmt, params.offset)
            return await _unary(worker, request, req, fmt)
        except _Dropped:
            return web.Response(status=500)  # never sent: the transport is closed
    finally:
        if req is not None:
            worker.engine.abort(req)  # no-op when finished
        if boot is not None and cfg.role == "prefill":
            if cfg.fast or (req is not None and req.completion_tokens > 0):
                prompt = len(params.prompt_ids)
                worker.hub.ready(boot.room, prompt, req.cached_tokens if req else 0)
            else:
                worker.hub.fail(boot.room, "the prefill request did not complete")


def _crash(worker: SimWorker, request: web.Request) -> None:
    worker.faults.exit_if_crash_mode_exit()
    if request.transport is not None:
        request.transport.close()
    raise _Dropped


async def _unary(
    worker: SimWorker, request: web.Request, req: SimRequest, fmt: Formatter
) -> web.Response:
    faults = worker.faults
    while not req.finished:
        await req.wait()
        if faults.config.crash_after_tokens is not None and faults.crash_due(len(req.output)):
            _crash(worker, request)
    return web.Response(body=orjson.dumps(fmt.full(req)), content_type="application/json")


async def _stream(
    worker: SimWorker, request: web.Request, req: SimRequest, fmt: Formatter, offset: int = 0
) -> web.StreamResponse:
    faults = worker.faults
    resp = web.StreamResponse(headers=SSE_HEADERS)
    await resp.prepare(request)
    try:
        head = fmt.head()
        if head:
            await resp.write(head)
        sent = 0
        while True:
            await req.wait()
            n = len(req.output)
            crash = faults.config.crash_after_tokens
            if crash is not None and faults.crash_due(n):
                n = min(n, crash)
            if n > sent:  # one event per token, as SGLang with --stream-interval 1
                out = req.output
                glued = not offset and fmt.kind == "chat"  # a chat answer's first word: no space
                await resp.write(b"".join(fmt.text(req, join_pieces(out[i:i + 1], i == 0 and glued))
                                          for i in range(sent, n)))
                sent = n
            if crash is not None and faults.crash_due(len(req.output)):
                _crash(worker, request)
            if req.finished:
                break
        await resp.write(fmt.tail(req))
    except ConnectionResetError:
        worker.engine.abort(req)  # the client went away between writes
    return resp
