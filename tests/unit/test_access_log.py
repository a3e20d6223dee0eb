"""The access log's batching handler writes what a plain handler would, in order, soon."""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Iterator

import pytest

from sglfleet.api import access_log


@pytest.fixture
def buffered() -> Iterator[tuple[io.StringIO, access_log.LineBuffer]]:
    log = access_log.log
    saved = (log.handlers, log.propagate, log.level, access_log._fast)
    out = io.StringIO()
    handler = access_log.install(out)
    log.setLevel(logging.INFO)
    try:
        yield out, handler
    finally:
        log.handlers, log.propagate, access_log._fast = saved[0], saved[1], saved[3]
        log.setLevel(saved[2])


LINE = re.compile(r"^\d\d:\d\d:\d\d INFO sglfleet\.access: (.*)$")


async def test_lines_are_batched_and_written_within_the_flush_interval(
        buffered: tuple[io.StringIO, access_log.LineBuffer]) -> None:
    out, handler = buffered
    access_log.log.handlers = [handler]  # (pytest adds its capture handlers during the test)
    access_log.access("rid=%s status=%d", "a", 200)
    access_log.access("rid=%s status=%d", "b", 499)
    assert out.getvalue() == ""  # not yet: one write for both
    await asyncio.sleep(access_log.FLUSH_S * 3)
    lines = out.getvalue().splitlines()
    assert [LINE.match(x).group(1) for x in lines] == ["rid=a status=200", "rid=b status=499"]  # type: ignore[union-attr]


async def test_an_ordinary_record_keeps_its_place(buffered: tuple[io.StringIO, access_log.LineBuffer]) -> None:
    out, handler = buffered
    access_log.log.handlers = [handler]
    access_log.access("first")
    access_log.log.warning("second %s", "record")
    lines = out.getvalue().splitlines()
    assert [LINE.sub(r"\1", x) for x in lines] == ["first", lines[1]]
    assert lines[1].endswith("WARNING sglfleet.access: second record")


def test_the_same_text_as_a_plain_handler_and_the_level_is_respected(
        buffered: tuple[io.StringIO, access_log.LineBuffer]) -> None:
    out, handler = buffered
    access_log.log.handlers = [handler]
    access_log.access("rid=%s dur_ms=%.1f", "x", 1.25)  # no event loop: written at once
    plain = io.StringIO()
    h = logging.StreamHandler(plain)
    h.setFormatter(logging.Formatter(access_log.FORMAT, access_log.DATEFMT))
    h.emit(logging.LogRecord("sglfleet.access", logging.INFO, __file__, 1, "rid=%s dur_ms=%.1f", ("x", 1.25), None))
    assert LINE.sub(r"\1", out.getvalue()) == LINE.sub(r"\1", plain.getvalue())
    access_log.log.setLevel(logging.WARNING)
    access_log.access("hidden")
    assert "hidden" not in out.getvalue()


def test_without_the_handler_lines_are_ordinary_records(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="sglfleet.access"):
        access_log.access("rid=%s", "plain")
    assert [r.getMessage() for r in caplog.records if r.name == "sglfleet.access"] == ["rid=plain"]
