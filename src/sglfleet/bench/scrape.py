"""`--scrape-metrics`: read each target's Prometheus `/metrics` during a run.

Samples are taken every `interval_s` (and once at the start and end). Gauges are reported as
mean and max over the samples, counters as their increase over the run. Series of one metric
with different labels (models, workers) are summed. Only the metrics in `GAUGES` and
`COUNTERS` are kept: SGLang's scheduler figures and sglfleet's own gateway figures.
A target without `/metrics` (llama.cpp's server) is reported as unavailable, not an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from sglfleet.bench.client import Target

GAUGES = {
    "sglang:num_running_reqs": "running requests",
    "sglang:num_queue_reqs": "queued requests",
    "sglang:cache_hit_rate": "cache hit rate",
    "sglang:token_usage": "KV token usage",
    "sglang:gen_throughput": "generation tok/s",
    "sglfleet_worker_inflight": "gateway in-flight",
    "sglfleet_queue_depth": "gateway queue depth",
    "sglfleet_model_active_requests": "gateway active requests",
}
COUNTERS = {
    "sglang:prompt_tokens_total": "prompt tokens",
    "sglang:cached_tokens_total": "cached prompt tokens",
    "sglang:generation_tokens_total": "generated tokens",
    "sglfleet_requests_total": "gateway requests",
    "sglfleet_retries_total": "gateway retries",
    "sglfleet_upstream_errors_total": "upstream errors",
}


def parse_metrics(text: str) -> dict[str, float]:
    """Known metrics from a Prometheus text page, summed over their label sets."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in GAUGES or sample.name in COUNTERS:
                out[sample.name] = out.get(sample.name, 0.0) + float(sample.value)
    return out


@dataclass(slots=True)
class ScrapeResult:
    """What one target's `/metrics` said during one run."""

    url: str
    samples: int = 0
    error: str | None = None
    gauges: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> {mean, max}
    counters: dict[str, float] = field(default_factory=dict)  # name -> increase

    @property
    def cache_hit_rate(self) -> float | None:
        """Cached / prompt tokens over the run (SGLang counters), when both moved."""
        prompt = self.counters.get("sglang:prompt_tokens_total")
        cached = self.counters.get("sglang:cached_tokens_total")
        return cached / prompt if prompt and cached is not None else None

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "samples": self.samples, "error": self.error,
                "gauges": self.gauges, "counters": self.counters,
                "cache_hit_rate": self.cache_hit_rate}


def metrics_url(target: Target) -> str:
    return target.base_url.rstrip("/").removesuffix("/v1") + "/metrics"


def _summarize(url: str, series: list[dict[str, float]], error: str | None) -> ScrapeResult:
    result = ScrapeResult(url, len(series), None if series else error)
    for name in GAUGES:
        values = [s[name] for s in series if name in s]
        if values:
            result.gauges[name] = {"mean": statistics.fmean(values), "max": max(values)}
    for name in COUNTERS:
        values = [s[name] for s in series if name in s]
        if len(values) >= 2:
            result.counters[name] = values[-1] - values[0]
    return result


class Scraper:
    """Poll every target's /metrics in the background; `stop()` returns one result each."""

    def __init__(self, targets: list[Target], interval_s: float = 1.0) -> None:
        self.targets = targets
        self.interval_s = interval_s
        self._series: dict[str, list[dict[str, float]]] = {t.label: [] for t in targets}
        self._errors: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        await self._sample_all()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> dict[str, ScrapeResult]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._sample_all()
            await self._session.close()
        return {t.label: _summarize(metrics_url(t), self._series[t.label],
                                    self._errors.get(t.label)) for t in self.targets}

    async def _loop(self) -> None:
        next_at = time.monotonic()
        while True:
            next_at += self.interval_s
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            await self._sample_all()

    async def _sample_all(self) -> None:
        await asyncio.gather(*(self._sample(t) for t in self.targets))

    async def _sample(self, target: Target) -> None:
        assert self._session is not None
        headers = {k: v for k, v in target.http_headers().items() if k != "Content-Type"}
        try:
            async with self._session.get(metrics_url(target), headers=headers) as resp:
                if resp.status != 200:
                    self._errors[target.label] = f"GET /metrics: HTTP {resp.status}"
                    return
                text = await resp.text()
            self._series[target.label].append(parse_metrics(text))
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            self._errors[target.label] = f"GET /metrics: {type(exc).__name__}"
