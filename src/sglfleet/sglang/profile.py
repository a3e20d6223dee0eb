"""SGLang engine: a typed launch profile, its exact argv / `docker run` line, and probes.

`SGLangProfile` is embedded by the fleet config as the `sglang:` key of a model entry.
Flag rules live in `sglang_rules.py` (`check_profile`).
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

DEFAULT_IMAGE = "lmsysorg/sglang"
DEFAULT_PORT = 30000
HEALTH_PATH = "/health"  # 503 while starting; runs a 1-token generation on >= 2025-08 builds
MODELS_PATH = "/v1/models"
METRICS_PATH = "/metrics"  # only with --enable-metrics
DEFAULT_STARTUP_TIMEOUT_S = 1800.0  # MoE weight shuffling on GB10 takes 5-10 minutes

# (field, flag) in the order the argv is rendered; booleans render as bare flags.
_FLAGS: tuple[tuple[str, str], ...] = (
    ("served_model_name", "--served-model-name"),
    ("host", "--host"),
    ("port", "--port"),
    ("tp", "--tp-size"),
    ("dp", "--dp-size"),
    ("pp", "--pp-size"),
    ("nnodes", "--nnodes"),
    ("node_rank", "--node-rank"),
    ("dist_init_addr", "--dist-init-addr"),
    ("context_length", "--context-length"),
    ("mem_fraction_static", "--mem-fraction-static"),
    ("max_total_tokens", "--max-total-tokens"),
    ("max_running_requests", "--max-running-requests"),
    ("chunked_prefill_size", "--chunked-prefill-size"),
    ("page_size", "--page-size"),
    ("kv_events_config", "--kv-events-config"),
    ("attention_backend", "--attention-backend"),
    ("quantization", "--quantization"),
    ("modelopt_quant", "--modelopt-quant"),
    ("kv_cache_dtype", "--kv-cache-dtype"),
    ("speculative_algorithm", "--speculative-algorithm"),
    ("speculative_draft_model_path", "--speculative-draft-model-path"),
    ("speculative_num_steps", "--speculative-num-steps"),
    ("speculative_eagle_topk", "--speculative-eagle-topk"),
    ("speculative_num_draft_tokens", "--speculative-num-draft-tokens"),
    ("disaggregation_mode", "--disaggregation-mode"),
    ("disaggregation_transfer_backend", "--disaggregation-transfer-backend"),
    ("disaggregation_bootstrap_port", "--disaggregation-bootstrap-port"),
    ("disaggregation_ib_device", "--disaggregation-ib-device"),
    ("enable_dp_attention", "--enable-dp-attention"),
    ("enable_metrics", "--enable-metrics"),
    ("trust_remote_code", "--trust-remote-code"),
    ("api_key", "--api-key"),
    ("tokenizer_worker_num", "--tokenizer-worker-num"),
)
# Defaults SGLang already applies: rendered only when they differ, so argv stays minimal.
_IMPLICIT = {"host": "127.0.0.1", "port": DEFAULT_PORT, "tp": 1, "dp": 1, "pp": 1, "nnodes": 1,
             "node_rank": 0, "tokenizer_worker_num": 1}


class SGLangProfile(BaseModel):
    """Everything needed to start one `python -m sglang.launch_server` process."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_path: str = Field(min_length=1)
    served_model_name: str | None = None
    tp: int = Field(1, ge=1)
    dp: int = Field(1, ge=1)
    pp: int = Field(1, ge=1)
    nnodes: int = Field(1, ge=1)
    node_rank: int = Field(0, ge=0)
    dist_init_addr: str | None = None
    context_length: int | None = Field(None, gt=0)
    mem_fraction_static: float | None = Field(None, gt=0, lt=1)
    max_total_tokens: int | None = Field(None, gt=0)
    max_running_requests: int | None = Field(None, gt=0)
    chunked_prefill_size: int | None = None
    page_size: int | None = Field(None, ge=1)
    # KV-cache events for policy kv_events, SGLang's JSON: {"publisher": "zmq", "endpoint":
    # "tcp://*:5557", "replay_endpoint": "tcp://*:5558"}; the gateway reads it back from /get_server_info
    kv_events_config: str | None = None
    attention_backend: str | None = None
    quantization: str | None = None
    modelopt_quant: str | None = None
    kv_cache_dtype: str | None = None
    speculative_algorithm: str | None = None
    speculative_draft_model_path: str | None = None
    speculative_num_steps: int | None = Field(None, ge=1)
    speculative_eagle_topk: int | None = Field(None, ge=1)
    speculative_num_draft_tokens: int | None = Field(None, ge=1)
    disaggregation_mode: Literal["null", "prefill", "decode"] | None = None
    disaggregation_transfer_backend: str | None = None
    disaggregation_bootstrap_port: int | None = Field(None, ge=1, le=65535)
    disaggregation_ib_device: str | None = None  # RDMA device(s) for the KV transfer, e.g. "mlx5_0,mlx5_1"
    enable_dp_attention: bool = False
    enable_metrics: bool = False
    trust_remote_code: bool = False
    host: str = "127.0.0.1"
    port: int = Field(DEFAULT_PORT, ge=1, le=65535)
    api_key: SecretStr | None = None
    tokenizer_worker_num: int = Field(1, ge=1)
    extra_args: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)
    python: str = "python3"
    docker_image: str = DEFAULT_IMAGE
    docker_tag: str = "latest"
    docker_shm_size: str = "32g"
    hf_cache_dir: str = "~/.cache/huggingface"

    @field_validator("kv_events_config")
    @classmethod
    def _kv_events_json(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            data = json.loads(value)
        except ValueError:
            raise ValueError("kv_events_config must be SGLang's JSON object, e.g. "
                             '{"publisher": "zmq", "endpoint": "tcp://*:5557"}') from None
        if not isinstance(data, dict) or not isinstance(data.get("endpoint", "tcp://*:5557"), str):
            raise ValueError("kv_events_config must be a JSON object with a string endpoint")
        return value

    @field_validator("speculative_algorithm")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value

    def to_argv(self) -> list[str]:
        """The exact `python -m sglang.launch_server ...` argv (secrets included)."""
        argv = [self.python, "-m", "sglang.launch_server", "--model-path", self.model_path]
        for name, flag in _FLAGS:
            value: Any = getattr(self, name)
            if value is None or value is False or _IMPLICIT.get(name) == value:
                continue
            if value is True:
                argv.append(flag)
            elif isinstance(value, SecretStr):
                argv += [flag, value.get_secret_value()]
            elif isinstance(value, float):
                argv += [flag, _fmt_float(value)]
            else:
                argv += [flag, str(value)]
        return argv + list(self.extra_args)

    def to_docker_run(self, *, name: str | None = None, gpus: str = "all") -> list[str]:
        """`docker run` for the lmsysorg/sglang images, with the same launch argv."""
        cmd = ["docker", "run", "--rm"]
        if name:
            cmd += ["--name", name]
        cmd += ["--gpus", gpus, "--ipc", "host", "--shm-size", self.docker_shm_size]
        # docker does not expand "~" (and the argv is shell-quoted when printed): expand it here
        cache = os.path.expanduser(self.hf_cache_dir)
        cmd += ["-p", f"{self.port}:{self.port}", "-v", f"{cache}:/root/.cache/huggingface"]
        model_path = os.path.expanduser(self.model_path)
        if model_path.startswith("/"):
            cmd += ["-v", f"{model_path}:{model_path}:ro"]
        for key, value in sorted(self.env.items()):
            cmd += ["-e", f"{key}={value}"]
        # Inside the container the server must listen on all interfaces to be published.
        inner = self.model_copy(update={"host": "0.0.0.0", "model_path": model_path})
        return cmd + [f"{self.docker_image}:{self.docker_tag}", *inner.to_argv()]

    def redacted_argv(self) -> list[str]:
        argv = self.to_argv()
        return ["***" if i > 0 and argv[i - 1] == "--api-key" else a for i, a in enumerate(argv)]

    # -- probes -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.served_model_name or self.model_path

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    @property
    def health_path(self) -> str:
        return HEALTH_PATH

    @property
    def health_url(self) -> str:
        return self.base_url + HEALTH_PATH

    @property
    def models_url(self) -> str:
        return self.base_url + MODELS_PATH

    @property
    def metrics_url(self) -> str | None:
        return self.base_url + METRICS_PATH if self.enable_metrics else None


def _fmt_float(value: float) -> str:
    text = repr(round(value, 6))
    return text[:-2] if text.endswith(".0") else text


def served_model_ids(payload: Any) -> list[str]:
    """Model ids from a `/v1/models` response body."""
    data = payload.get("data") if isinstance(payload, dict) else None
    return [str(m["id"]) for m in data or [] if isinstance(m, dict) and "id" in m]


def check_served_model(payload: Any, expected: str) -> str | None:
    """None when `expected` is served, else a message naming what is served instead."""
    ids = served_model_ids(payload)
    if expected in ids:
        return None
    return f"SGLang serves {ids or 'no models'}, expected {expected!r}; check --served-model-name"


_METRIC_LINE = re.compile(r"^(sglang:[A-Za-z0-9_:]+)(\{[^}]*\})?\s+([-+0-9.eEinfNa]+)")


def parse_metrics(text: str) -> dict[str, float]:
    """Sum each `sglang:*` sample over its labels (Prometheus text format)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        match = _METRIC_LINE.match(line)
        if match:
            value = float(match.group(3))
            if not math.isnan(value):
                out[match.group(1)] = out.get(match.group(1), 0.0) + value
    return out


def load_figures(metrics: dict[str, float]) -> dict[str, float | None]:
    """The load and cache figures a router or `status` shows, from parsed metrics."""
    prompt = metrics.get("sglang:prompt_tokens_total")
    cached = metrics.get("sglang:cached_tokens_total")
    return {
        "running": metrics.get("sglang:num_running_reqs"),
        "queued": metrics.get("sglang:num_queue_reqs"),
        "token_usage": metrics.get("sglang:token_usage"),
        "cache_hit_rate": metrics.get("sglang:cache_hit_rate")
        if "sglang:cache_hit_rate" in metrics
        else (cached / prompt if cached is not None and prompt else None),
        "gen_throughput": metrics.get("sglang:gen_throughput"),
        "max_total_num_tokens": metrics.get("sglang:max_total_num_tokens"),
    }


async def wait_ready(
    session: Any,
    profile: SGLangProfile,
    *,
    timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S,
    interval_s: float = 5.0,
    on_progress: Any = None,
) -> None:
    """Poll `/health` (503 while loading) until 200, then check `/v1/models` serves our name.

    `session` is an `aiohttp.ClientSession`; `on_progress(elapsed_s, status)` is called on
    every poll. Raises TimeoutError or RuntimeError with a message saying what to check.
    """
    import asyncio
    import time

    import aiohttp

    start = time.monotonic()
    probe_timeout = aiohttp.ClientTimeout(total=30)
    while True:
        elapsed = time.monotonic() - start
        status: int | str
        try:
            async with session.get(profile.health_url, timeout=probe_timeout) as resp:
                status = resp.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            status = type(exc).__name__
        if on_progress is not None:
            on_progress(elapsed, status)
        if status == 200:
            break
        if elapsed > timeout_s:
            raise TimeoutError(f"SGLang at {profile.base_url} not ready after {timeout_s:.0f} s (last: {status})")
        await asyncio.sleep(interval_s)
    async with session.get(profile.models_url, timeout=probe_timeout) as resp:
        problem = check_served_model(await resp.json(), profile.name)
    if problem:
        raise RuntimeError(problem)
