"""Read the memory figures out of an SGLang start-up log (pure: text in, figures out).

Lines understood (all SGLang versions seen in public logs, 2024-10 .. 2026):

- `server_args=ServerArgs(model_path='...', ..., mem_fraction_static=0.831, ..., tp_size=8, ...)`
- `Init torch distributed ends. mem usage=1.25 GB`
- `Load weight begin. avail mem=77.43 GB`
- `Load weight end. [elapsed=.., ]type=Grok1ForCausalLM, [dtype=..|quant=..], avail mem=40.69 GB, mem usage=36.73 GB.`
- `KV Cache is allocated. [dtype: .., ]#tokens: 903439, K size: 13.79 GB, V size: 13.79 GB` (or `KV size: X GB`)
- `max_total_num_tokens=903439, ..., max_running_requests=.., context_len=.., available_gpu_mem=10.26 GB`
- `device_name=NVIDIA_H100_80GB_HBM3` (kernel-config messages) and `lmsysorg/sglang:v0.5.2rc2` (image tags)

SGLang's "GB" is GiB. With tensor parallelism every rank logs; the figures of the first rank
(TP0, or the first occurrence) are used. A log holding several runs (a supervisor appends
every restart) is read from its last `server_args=` / `Load weight begin` onwards.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

_NUM = r"([0-9]+(?:\.[0-9]+)?)"
_RANK = r"(?:\[(?:[^\]\n]*?TP(\d+)[^\]\n]*|[^\]\n]*)\]\s*)?"
_BEGIN = re.compile(_RANK + r"Load weight begin\. avail mem=" + _NUM + r" ?GB")
_END = re.compile(_RANK + r"Load weight end\.(?P<body>[^\n]*?)avail mem=" + _NUM + r" ?GB(?:, mem usage=" + _NUM
                  + r" ?GB)?")
_TYPE = re.compile(r"type=([A-Za-z0-9_]+)")
_KV = re.compile(_RANK + r"KV Cache is allocated\.[^\n]*?#tokens: (\d+)(?:, (?:K size: " + _NUM
                 + r" ?GB, V size: " + _NUM + r" ?GB|KV size: " + _NUM + r" ?GB))?")
_MAXTOK = re.compile(r"max_total_num_tokens=(\d+)")
_AFTER = re.compile(r"max_total_num_tokens=\d+[^\n]*")
_DIST = re.compile(_RANK + r"Init torch distributed ends\.[^\n]*?mem usage=" + _NUM)
_ARGS = re.compile(r"server_args=ServerArgs\((.*?)\)\s*(?:\n|$)", re.S)
_DEVICE = re.compile(r"device_name=([A-Za-z0-9_\-]+?)(?:,|\.json|\s)")
_VERSION = re.compile(r"(?:sglang[:=]=?v?|sglang version[: ]+v?)(\d+\.\d+\.\d+(?:\.post\d+|rc\d+)?)", re.I)
_PAGE = re.compile(r"changing page_size from \S+ to (\d+)")
_RUN_START = re.compile(r"server_args=ServerArgs\(|Load weight begin\.")

# server_args keys kept (value parsed as a Python literal when simple)
ARG_KEYS = ("model_path", "served_model_name", "mem_fraction_static", "tp_size", "pp_size", "dp_size",
            "page_size", "kv_cache_dtype", "quantization", "chunked_prefill_size", "context_length",
            "max_total_tokens", "max_running_requests", "speculative_algorithm", "attention_backend",
            "enable_dp_attention", "cuda_graph_max_bs", "dtype", "device")


@dataclass(frozen=True, kw_only=True)
class StartupFigures:
    """What one SGLang start-up logged, per GPU (GiB)."""

    free_start_gib: float | None = None  # "Load weight begin. avail mem" (or end avail + usage)
    free_start_derived: bool = False  # True when computed from the "Load weight end" line
    weights_gib: float | None = None  # "Load weight end ... mem usage"
    free_after_weights_gib: float | None = None
    dist_init_gib: float | None = None  # "Init torch distributed ends. mem usage"
    kv_tokens: int | None = None  # "KV Cache is allocated. #tokens"
    kv_cache_gib: float | None = None  # K size + V size (or KV size)
    max_total_num_tokens: int | None = None
    max_running_requests: int | None = None
    context_len: int | None = None
    available_gpu_mem_gib: float | None = None  # left after KV pool + CUDA graphs
    model_type: str | None = None
    device_name: str | None = None
    sglang_version: str | None = None
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def mem_fraction_static(self) -> float | None:
        value = self.args.get("mem_fraction_static")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def tp(self) -> int:
        return int(self.args.get("tp_size") or 1)

    @property
    def complete(self) -> bool:
        """The memory split is known: free memory, weights and the pool size."""
        return None not in (self.free_start_gib, self.weights_gib) and (
            self.kv_tokens is not None or self.max_total_num_tokens is not None)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["mem_fraction_static"] = self.mem_fraction_static
        return out


def _literal(raw: str) -> Any:
    raw = raw.strip()
    if raw in ("None", ""):
        return None
    if raw in ("True", "False"):
        return raw == "True"
    if raw[:1] in "'\"" and raw[-1:] == raw[:1]:
        return raw[1:-1]
    try:
        return int(raw)
    except ValueError:
        try:
            return float(raw)
        except ValueError:
            return raw


def parse_server_args(text: str) -> dict[str, Any]:
    """The simple key=value pairs of a `server_args=ServerArgs(...)` line (nested values skipped)."""
    out: dict[str, Any] = {}
    text = ", " + text
    for key in ARG_KEYS:
        m = re.search(r"(?:\(|, )" + key + r"=('[^']*'|\"[^\"]*\"|[^,()\[\]{}]+)", text)
        if m:
            out[key] = _literal(m.group(1))
    return out


def _first_rank(matches: list[re.Match[str]]) -> re.Match[str] | None:
    """The TP0 match when ranks are tagged, else the first."""
    for m in matches:
        if m.group(1) in (None, "0"):
            return m
    return matches[0] if matches else None


def last_run(text: str) -> str:
    """The text of the last start-up in a log that holds several."""
    starts = [m.start() for m in _RUN_START.finditer(text)]
    if not starts:
        return text
    # a run starts at its server_args line; "Load weight begin" of the same run follows it
    args_starts = [m.start() for m in re.finditer(r"server_args=ServerArgs\(", text)]
    cut = args_starts[-1] if args_starts else starts[-1]
    if not args_starts:  # no server_args: the first rank's "Load weight begin" of the last group
        begins = [m.start() for m in re.finditer(r"Load weight begin\.", text)]
        ends = [m.start() for m in re.finditer(r"max_total_num_tokens=", text)]
        earlier = [e for e in ends if e < begins[-1]]
        cut = next((b for b in begins if not earlier or b > earlier[-1]), begins[-1])
    line_start = text.rfind("\n", 0, cut) + 1
    return text[line_start:]


def parse_startup_log(text: str) -> StartupFigures:
    """Parse one SGLang start-up log (the last run, if there are several)."""
    full = text.replace("\r", "").replace(" ⏎ ", "\n").replace("⏎", "\n")
    text = last_run(full)
    run_start = len(full) - len(text)
    begin = _first_rank(list(_BEGIN.finditer(text)))
    end = _first_rank(list(_END.finditer(text)))
    kv = _first_rank(list(_KV.finditer(text)))
    dist = _first_rank(list(_DIST.finditer(text)))
    args_m = _ARGS.search(text)
    args = parse_server_args(args_m.group(1)) if args_m else {}
    page = _PAGE.search(full, max(0, run_start - 2000))  # logged just before server_args
    if page and args.get("page_size") in (None, 1):
        args["page_size"] = int(page.group(1))  # SGLang raised it for the attention backend
    free = float(begin.group(2)) if begin else None
    weights = float(end.group(4)) if end and end.group(4) else None
    after = float(end.group(3)) if end else None
    derived = False
    if free is None and after is not None and weights is not None:
        free, derived = round(after + weights, 2), True
    if weights is None and free is not None and after is not None:
        weights = round(free - after, 2)
    kv_gib = None
    if kv and kv.group(3) is not None:
        kv_gib = float(kv.group(3)) + float(kv.group(4))
    elif kv and kv.group(5) is not None:
        kv_gib = float(kv.group(5))
    summary = _AFTER.search(text)
    fields: dict[str, str] = {}
    if summary:
        fields = dict(re.findall(r"(\w+)=([0-9.]+)", summary.group(0)))
    maxtok = _MAXTOK.search(text)
    type_m = _TYPE.search(end.group("body")) if end else None
    device = _DEVICE.search(text)
    version = _VERSION.search(text)
    return StartupFigures(
        free_start_gib=free, free_start_derived=derived, weights_gib=weights, free_after_weights_gib=after,
        dist_init_gib=float(dist.group(2)) if dist else None,
        kv_tokens=int(kv.group(2)) if kv else None, kv_cache_gib=kv_gib,
        max_total_num_tokens=int(maxtok.group(1)) if maxtok else None,
        max_running_requests=int(fields["max_running_requests"]) if "max_running_requests" in fields else None,
        context_len=int(fields["context_len"]) if "context_len" in fields else None,
        available_gpu_mem_gib=float(fields["available_gpu_mem"]) if "available_gpu_mem" in fields else None,
        model_type=type_m.group(1) if type_m else None,
        device_name=device.group(1).replace("_", " ") if device else None,
        sglang_version=version.group(1) if version else None,
        args=args,
    )
