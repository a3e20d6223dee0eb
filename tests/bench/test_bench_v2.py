"""bench v2 end to end against the deterministic upstream (its own process, known timings):
attainment, the knee, the max goodput, trace replay timing, server metrics, the HTML report
(in headless Chromium), and A/B direct vs through a real gateway."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from itertools import pairwise
from pathlib import Path

import pytest
import typer
from test_bench_cli import invoke

from sglfleet.bench.cli import register


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """A stand-in for the sglfleet root app."""

    register(app)
    return app


def upstream_log(url: str, clear: bool = False) -> list[dict]:
    with urllib.request.urlopen(url + "/_fake/log" + ("?clear=1" if clear else "")) as resp:
        return json.loads(resp.read())


def test_attainment_is_exact_for_a_known_mix(app: typer.Typer, fake_url: str, tmp_path: Path) -> None:
    # 3 prompts of 4 tokens (E2E 100 + 3*20 = 160 ms) and 2 of 20 tokens (480 ms); e2e <= 320 ms
    rows = [{"prompt": f"short {i}", "output_len": 4} for i in range(3)]
    rows += [{"prompt": f"long {i}", "output_len": 20} for i in range(2)]
    data = tmp_path / "mix.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "mix.json"
    text = invoke(app, "--base-url", fake_url, "--tokenizer", "approx", "--workload", "file",
                  "--dataset-path", str(data), "--num-requests", "5", "--concurrency", "5",
                  "--slo", "e2e=320ms", "--warmup", "0", "--output-json", str(out))
    assert "SLO attainment" in text and "60.0%" in text and "Token goodput" in text
    s = json.loads(out.read_text())["summary"]
    assert s["slo_attainment"] == 0.6
    assert s["token_goodput"] == pytest.approx(12 / s["duration_s"])
    assert s["request_goodput"] == pytest.approx(3 / s["duration_s"])


@pytest.mark.slow
def test_auto_sweep_finds_the_knee_of_a_six_slot_server(app: typer.Typer, fake_url: str,
                                                          tmp_path: Path) -> None:
    # 6 slots x (20 ms + 8 x 10 ms) per request: 60 req/s at most, knee at concurrency 6
    out = tmp_path / "knee.json"
    text = invoke(app, "--base-url", fake_url, "--tokenizer", "approx", "--header",
                  "x-fake-slots:6", "--header", "x-fake-ttft-ms:20", "--header", "x-fake-itl-ms:10",
                  "--input-len", "8", "--output-len", "9", "--num-requests", "48",
                  "--sweep", "auto:concurrency:2", "--output-json", str(out))
    assert "knee at concurrency" in text and "auto step" in text
    doc = json.loads(out.read_text())
    knee = doc["knee"][doc["runs"][0]["label"].split(" ")[0]]
    assert knee["value"] == pytest.approx(6, rel=0.10)
    assert knee["request_throughput"] == pytest.approx(60, rel=0.10)
    xs = [p["x"] for p in next(iter(doc["sweep"]["points"].values()))]
    assert xs[0] == 2 and xs[-1] <= 32 and xs == sorted(xs)  # stopped soon after the knee


@pytest.mark.slow
def test_max_goodput_finds_the_capacity(app: typer.Typer, fake_url: str, tmp_path: Path) -> None:
    # same 60 req/s server; regular arrivals; TTFT SLO = 20 ms + 40 ms of queueing slack
    out = tmp_path / "goodput.json"
    text = invoke(app, "--base-url", fake_url, "--tokenizer", "approx", "--header",
                  "x-fake-slots:6", "--header", "x-fake-ttft-ms:20", "--header", "x-fake-itl-ms:10",
                  "--input-len", "8", "--output-len", "9", "--num-requests", "60",
                  "--burstiness", "50", "--request-rate", "30", "--slo", "ttft=60ms",
                  "--max-goodput", "--goodput-min-seconds", "1", "--output-json", str(out))
    assert "max goodput at" in text
    mg = next(iter(json.loads(out.read_text())["max_goodput"].values()))
    assert mg["rate"] == pytest.approx(60, rel=0.10)
    assert mg["attainment"] >= 0.9 and mg["upper"] > mg["rate"]
    assert mg["request_goodput"] == pytest.approx(mg["rate"], rel=0.15)


def test_max_goodput_needs_an_slo(app: typer.Typer, fake_url: str) -> None:
    from typer.testing import CliRunner

    res = CliRunner().invoke(app, ["bench", "--base-url", fake_url, "--max-goodput"])
    assert res.exit_code == 2 and "--max-goodput needs --slo" in res.output


def test_trace_replay_keeps_inter_arrival_times(app: typer.Typer, fake_url: str,
                                                tmp_path: Path) -> None:
    stamps = [0, 300, 700, 950, 1400, 1700]
    trace = tmp_path / "trace.jsonl"
    trace.write_text("\n".join(json.dumps({"timestamp": t + 5000, "input_length": 12,
                                           "output_length": 3, "hash_ids": [0, i + 1]})
                               for i, t in enumerate(stamps)))
    want = [(b - a) / 1000 * 0.8 for a, b in pairwise(stamps)]
    failures = []
    for _ in range(3):  # scheduling noise only adds delay; a wrong schedule fails every try
        upstream_log(fake_url, clear=True)
        invoke(app, "--base-url", fake_url, "--tokenizer", "approx", "--trace", str(trace),
               "--time-scale", "0.8", "--trace-block-size", "6", "--warmup", "0",
               "--header", "x-fake-ttft-ms:5", "--header", "x-fake-itl-ms:2")
        times = sorted(e["t"] for e in upstream_log(fake_url))
        got = [b - a for a, b in pairwise(times)]
        assert len(times) == len(stamps)
        bad = [(g, w) for g, w in zip(got, want, strict=True) if abs(g - w) > 0.05 * w]
        if not bad:
            return
        failures.append(bad)
    pytest.fail(f"inter-arrival times off by more than 5 %: {failures}")


def test_scrape_metrics_reads_the_servers_gauges(app: typer.Typer, fake_url: str,
                                                 tmp_path: Path) -> None:
    out = tmp_path / "scrape.json"
    text = invoke(app, "--base-url", fake_url, "--tokenizer", "approx", "--header",
                  "x-fake-slots:2", "--header", "x-fake-itl-ms:10", "--num-requests", "12",
                  "--concurrency", "6", "--output-len", "60", "--input-len", "10",
                  "--scrape-metrics", "--output-json", str(out))
    assert "server-side metrics" in text and "running requests" in text
    sm = json.loads(out.read_text())["runs"][0]["server_metrics"]
    assert sm["samples"] >= 3 and sm["error"] is None
    assert sm["gauges"]["sglang:num_running_reqs"]["max"] == 2  # the server's 2 slots
    assert sm["gauges"]["sglang:num_queue_reqs"]["max"] >= 3  # 6 in flight, 2 served
    assert sm["counters"]["sglang:prompt_tokens_total"] >= 12 * 10


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which(
        "google-chrome")


def test_html_report_renders_in_headless_chromium(app: typer.Typer, fake_url: str,
                                                  tmp_path: Path) -> None:
    page, png = tmp_path / "report.html", tmp_path / "report.png"
    invoke(app, "--base-url", fake_url, "--label", "fast", "--tokenizer", "approx",
           "--header", "x-fake-itl-ms:5", "--header", "x-fake-ttft-ms:20",
           "--compare", f"slow={fake_url} x-fake-itl-ms:8", "--num-requests", "6",
           "--concurrency", "3", "--output-len", "8", "--input-len", "8", "--repeat", "2",
           "--slo", "tpot=6.5ms", "--sweep", "auto:concurrency:1:4", "--html", str(page))
    html = page.read_text()
    assert "<script" not in html  # self-contained: no script, nothing fetched
    assert "http" not in html.replace(fake_url, "").replace('xmlns="http://www.w3.org/2000/svg"', "")
    for needle in ("A/B over 2 repeats", "Saturation sweep", "TTFT distribution",
                   "ITL distribution", "Throughput against latency", "<svg"):
        assert needle in html
    chromium = _chromium()
    if chromium is None:
        pytest.skip("headless Chromium not installed (apt-get install chromium)")
    res = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--screenshot={png}", "--window-size=1200,2400", page.as_uri()],
        capture_output=True, timeout=120)
    assert png.exists(), res.stderr.decode(errors="replace")[-2000:]
    from PIL import Image

    with Image.open(png) as img:  # the page painted something besides the white background
        colors = img.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 50


@pytest.mark.slow
def test_ab_direct_vs_gateway_orders_like_the_overhead_benchmark(
        app: typer.Typer, fake_url: str, tmp_path: Path) -> None:
    from tests.fleetproc import start_gateway

    gw = start_gateway(tmp_path / "gw", {"models": [
        {"name": "fake-model", "engine": "external", "urls": [fake_url]}]})
    try:
        out = tmp_path / "ab.json"
        text = invoke(app, "--base-url", fake_url, "--label", "direct", "--model", "fake-model",
                      "--compare", f"gateway={gw.url}", "--tokenizer", "approx",
                      "--num-requests", "8", "--concurrency", "4", "--output-len", "4",
                      "--input-len", "8", "--repeat", "3", "--output-json", str(out))
    finally:
        gw.stop()
    assert "A/B over 3 repeats" in text
    ab = json.loads(out.read_text())["ab"]
    assert ab["baseline"] == "direct" and ab["repeats"] == 3
    for fig in ("ttft_ms.median", "e2e_ms.median"):
        direct, via = ab["intervals"][fig]["direct"], ab["intervals"][fig]["gateway"]
        for side in (direct, via):
            assert side["n"] == 3 and side["low"] <= side["mean"] <= side["high"]
        # (whether the gateway's fraction of a millisecond shows against the fake's ±1 ms
        # jitter is up to chance: the difference is checked for consistency, not its sign)
        d = ab["differences"][fig]["gateway"]
        assert d["diff"]["mean"] == pytest.approx(via["mean"] - direct["mean"], abs=1e-6)
        assert d["diff"]["low"] <= d["diff"]["mean"] <= d["diff"]["high"]
        assert isinstance(d["significant"], bool)
