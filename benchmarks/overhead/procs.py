"""Start and stop the processes of the overhead benchmark: the sim upstream, sglfleet, and the
peers (sglang-router, vllm-router, LiteLLM proxy), each peer in its own virtualenv under a cache dir.

Everything binds 127.0.0.1. LiteLLM is started with its remote model-cost map off and with
HTTP(S) proxies pointing at a closed local port, so nothing leaves the machine.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import yaml

CACHE = Path(os.environ.get("SGLFLEET_BENCH_CACHE", "~/.cache/sglfleet-bench")).expanduser()
ROUTER_SPEC = "sglang-router==0.3.2"
VLLM_ROUTER_SPEC = "vllm-router==0.1.17"  # the vLLM project's Rust router (a fork of SGLang's)
LITELLM_SPEC = "litellm[proxy]"
LITELLM_KEY = "sk-sglfleet-bench-7d1f0c2a9b"  # it refuses to start without one (no database: key checked in memory)
LOCAL_ONLY_ENV = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
                  "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
                  "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen[bytes]
    url: str  # base URL without /v1
    log_path: Path
    model: str = "bench"
    api_key: str | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def tree(self) -> list[psutil.Process]:
        try:
            p = psutil.Process(self.proc.pid)
            return [p, *p.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_s(self) -> float:
        total = 0.0
        for p in self.tree():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def rss_mb(self) -> float:
        total = 0
        for p in self.tree():
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total / 2**20

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def spawn(name: str, argv: list[str], url: str, workdir: Path, env: dict[str, str] | None = None,
          **kw: object) -> Proc:
    log_path = workdir / f"{name}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})}, start_new_session=True)
    return Proc(name, proc, url, log_path, **kw)  # type: ignore[arg-type]


def wait_serving(p: Proc, timeout: float = 120.0) -> None:
    """Ready = a real one-token chat completion answers 200 (the same probe for every target)."""
    deadline = time.monotonic() + timeout
    body = {"model": p.model, "max_tokens": 1, "messages": [{"role": "user", "content": "ping"}]}
    headers = {"authorization": f"Bearer {p.api_key}"} if p.api_key else {}
    last = ""
    while time.monotonic() < deadline:
        if p.proc.poll() is not None:
            raise RuntimeError(f"{p.name} exited ({p.proc.returncode}):\n{p.log_path.read_text()[-2000:]}")
        try:
            r = httpx.post(p.url + "/v1/chat/completions", json=body, headers=headers, timeout=5, trust_env=False)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}: {r.text[:200]}"
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.3)
    p.stop()
    raise TimeoutError(f"{p.name} not serving after {timeout}s: {last}\n{p.log_path.read_text()[-2000:]}")


def start_sim(workdir: Path, sim_args: list[str]) -> Proc:
    port = free_port()
    p = spawn("sim", [sys.executable, "-m", "sglfleet.sim", "--port", str(port), *sim_args],
              f"http://127.0.0.1:{port}", workdir)
    wait_serving(p)
    return p


def start_sglfleet(workdir: Path, upstream: str, *, policy: str = "round_robin", access_log: bool = True,
                   extra_args: list[str] | None = None, name: str = "sglfleet") -> Proc:
    """`sglfleet serve` as a user runs it (default log level: access lines on), plus `extra_args`."""
    port = free_port()
    cfg = {"gateway": {"host": "127.0.0.1", "port": port, "access_log": access_log,
                       "log_dir": str(workdir / "engine-logs")},
           "models": [{"name": "bench", "engine": "external", "urls": [upstream], "policy": policy,
                       "upstream_model": "sim"}]}
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    argv = [sys.executable, "-m", "sglfleet.cli", "serve", "--config", str(path), "--port", str(port),
            *(extra_args or [])]
    p = spawn(name, argv, f"http://127.0.0.1:{port}", workdir, env={"COLUMNS": "200"})
    wait_serving(p)
    return p


def ensure_venv(name: str, spec: str, probe: str, log: Path) -> Path | None:
    """A virtualenv of its own for a peer; None (with the reason in `log`) when it can't be had."""
    venv = CACHE / "venvs" / name
    py = venv / "bin" / "python"
    ok = venv / ".installed"
    if ok.exists() and ok.read_text() == spec:
        return py
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        if not py.exists():
            r = subprocess.run([sys.executable, "-m", "venv", str(venv)], stdout=out, stderr=subprocess.STDOUT, check=False)
            if r.returncode != 0:
                return None
        r = subprocess.run([str(py), "-m", "pip", "install", "-q", spec], stdout=out, stderr=subprocess.STDOUT, check=False)
        if r.returncode != 0:
            return None
        r = subprocess.run([str(py), "-c", probe], stdout=out, stderr=subprocess.STDOUT, check=False)
        if r.returncode != 0:
            return None
    ok.write_text(spec)
    return py


def start_router(workdir: Path, upstream: str, py: Path, *, name: str = "sglang-router") -> Proc:
    """sglang-router or vllm-router (same command line: vLLM's router is a fork of SGLang's)."""
    port, prom = free_port(), free_port()
    module = "sglang_router.launch_router" if name == "sglang-router" else "vllm_router.launch_router"
    level = "warn" if name == "sglang-router" else "warning"
    argv = [str(py), "-m", module, "--host", "127.0.0.1", "--port", str(port),
            "--worker-urls", upstream, "--policy", "round_robin", "--log-level", level,
            "--prometheus-host", "127.0.0.1", "--prometheus-port", str(prom)]
    p = spawn(name, argv, f"http://127.0.0.1:{port}", workdir, env=LOCAL_ONLY_ENV)
    wait_serving(p)
    return p


def start_litellm(workdir: Path, upstream: str, py: Path) -> Proc:
    port = free_port()
    cfg = {"model_list": [{"model_name": "bench",
                           "litellm_params": {"model": "openai/sim", "api_base": upstream + "/v1",
                                              "api_key": "none"}}],
           "litellm_settings": {"telemetry": False, "drop_params": True},
           "general_settings": {"master_key": LITELLM_KEY}}
    path = workdir / "litellm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    litellm = py.parent / "litellm"
    argv = [str(litellm), "--config", str(path), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    env = {**LOCAL_ONLY_ENV, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False",
           "LITELLM_LOG": "ERROR", "DISABLE_SCHEMA_UPDATE": "True"}
    p = spawn("litellm", argv, f"http://127.0.0.1:{port}", workdir, env=env, api_key=LITELLM_KEY)
    wait_serving(p, timeout=180)
    return p
