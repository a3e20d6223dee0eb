"""The access log: one line per finished request on the logger "sglfleet.access".

`sglfleet serve` puts a `LineBuffer` on that logger. Lines then skip the logging machinery
(a LogRecord, a formatter, a write and a flush each: ~13 µs, the largest single cost left in
a non-streamed request) and go out in one write per `FLUSH_S` with the same text a plain
handler would print. Anyone else's set-up (tests, an embedding application, another level
or handler) gets ordinary `logging` records.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, TextIO

log = logging.getLogger("sglfleet.access")

FLUSH_S = 0.05  # the longest a line waits in the buffer
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATEFMT = "%H:%M:%S"


class LineBuffer(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that also takes preformatted access lines and writes them in batches."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.setFormatter(logging.Formatter(FORMAT, DATEFMT))
        self._lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._second = -1
        self._prefix = ""

    def add(self, message: str) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = f"{time.strftime(DATEFMT, time.localtime(now))} INFO {log.name}: "
        self._lines.append(self._prefix + message + "\n")
        if self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(FLUSH_S, self.flush)
            except RuntimeError:  # no event loop here: write at once
                self.flush()

    def flush(self) -> None:
        self._timer = None
        if self._lines:
            lines, self._lines = "".join(self._lines), []
            try:
                self.stream.write(lines)
            except (OSError, ValueError):  # stderr closed (shutdown): nothing to write to
                return
        super().flush()

    def emit(self, record: logging.LogRecord) -> None:
        self.flush()  # an ordinary record keeps its place after the buffered lines
        super().emit(record)


_fast: LineBuffer | None = None


def install(stream: TextIO) -> LineBuffer:
    """The access logger's only handler from now on (not propagated)."""
    global _fast
    handler = LineBuffer(stream)
    log.handlers = [handler]
    log.propagate = False
    _fast = handler
    return handler


def access(fmt: str, *args: Any) -> None:
    """One access line (`fmt % args`), at INFO."""
    h = _fast
    hs = log.handlers
    if h is not None and len(hs) == 1 and hs[0] is h and not log.filters and log.isEnabledFor(logging.INFO):
        h.add(fmt % args)
    else:
        log.info(fmt, *args)
