"""SGLang's default `mem_fraction_static`, per SGLang version.

SGLang has changed how it picks `mem_fraction_static` (when `--mem-fraction-static` is not
given) three times; a log only matches the planner when the planner applies the rule of the
version that wrote it. Each rule names the pull request that introduced it (the snapshot of
sgl-project/sglang was too large to fetch here, so merge commits are cited by PR):

- `by-tp` (SGLang <= 0.4.6): a table by tp size in `ServerArgs.__post_init__`
  (0.88 / 0.87 / 0.85 / 0.81 / 0.79 for tp 1 / 2 / 4 / 8 / 16); B200 tweak in sgl-project/sglang#6718.
- `tiered-reserve` (0.4.7 .. 0.5.2): sgl-project/sglang#7054 "Simplify the heuristics for setting
  --mem-fraction-static", merged 2025-06-10.
- `computed-reserve` (>= 0.5.3): sgl-project/sglang#10975 "Use more general heuristics to set the
  default value of --mem-fraction-static", merged 2025-09-27.

The release boundaries (0.4.7, 0.5.3) are the first releases after each merge [uncertain by
one patch release]. Values checked against logs: `tiered-reserve` gives 0.831 for H100 tp 8
(grok-2 log, image v0.5.2rc2), 0.879 for a 24 GB card tp 1 and 0.818 for a 16 GB card tp 1;
`computed-reserve` gives 0.818 for H100 tp 8 and 0.856 for B200 tp 1.

"gpu_mem" below is the device's total memory in MiB as nvidia-smi reports it (the catalog's
`memory_gib` x 1024).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from sglfleet.planner.memory import MemDefaults, legacy_mem_fraction, sglang_defaults

RuleName = Literal["by-tp", "tiered-reserve", "computed-reserve"]


@dataclass(frozen=True, kw_only=True)
class VersionRule:
    name: RuleName
    first_version: tuple[int, ...]
    source: str


RULES: tuple[VersionRule, ...] = (
    VersionRule(name="by-tp", first_version=(0,),
                source="ServerArgs.__post_init__ tp table; sgl-project/sglang#6718"),
    VersionRule(name="tiered-reserve", first_version=(0, 4, 7),
                source="https://github.com/sgl-project/sglang/pull/7054"),
    VersionRule(name="computed-reserve", first_version=(0, 5, 3),
                source="https://github.com/sgl-project/sglang/pull/10975"),
)
NEWEST_KNOWN_VERSION = "0.5.3"  # the newest version whose default rule the planner knows


def parse_version(text: str) -> tuple[int, ...]:
    """'0.5.2rc2' -> (0, 5, 2); 'v0.4.6.post5' -> (0, 4, 6, 5)."""
    parts = re.findall(r"\d+", text.strip().lstrip("vV").split("rc")[0])
    if not parts:
        raise ValueError(f"not an SGLang version: {text!r} (expected e.g. 0.5.2)")
    return tuple(int(p) for p in parts)


def rule_for(version: str | None) -> VersionRule:
    """The default-fraction rule in force in `version` (None: the newest known)."""
    v = parse_version(version or NEWEST_KNOWN_VERSION)
    chosen = RULES[0]
    for rule in RULES:
        if v >= rule.first_version:
            chosen = rule
    return chosen


def _tiered_reserve_mb(gpu_mem_mb: float, parallel: int) -> float:
    """sgl-project/sglang#7054: a fixed reserve per memory tier, growing with tp x pp."""
    if gpu_mem_mb < 35 * 1024:  # T4, 4080, A10, L4, 4090, 5090 (chunked prefill 2k)
        return (2.8 + parallel / 10) * 1024
    if gpu_mem_mb < 90 * 1024:  # A100, H100, L40S (chunked prefill 8k, cuda graph bs 160)
        return (9.5 + parallel / 2) * 1024
    if gpu_mem_mb < 160 * 1024:  # H20, H200 (cuda graph bs 256)
        return (12 + parallel / 2) * 1024
    return 32 * 1024  # B200, MI300 (chunked prefill 16k, cuda graph bs 512)


def default_mem_fraction(
    gpu_total_gib: float,
    *,
    version: str | None = None,
    tp: int = 1,
    pp: int = 1,
    speculative_algorithm: str | None = None,
    chunked_prefill_size: int | None = None,
    enable_dp_attention: bool = False,
    dp: int = 1,
) -> tuple[float, VersionRule]:
    """SGLang's `mem_fraction_static` when the flag is unset, and the rule that gave it."""
    rule = rule_for(version)
    if rule.name == "computed-reserve":
        d: MemDefaults = sglang_defaults(gpu_total_gib, tp=tp, pp=pp, speculative_algorithm=speculative_algorithm,
                                         chunked_prefill_size=chunked_prefill_size,
                                         enable_dp_attention=enable_dp_attention, dp=dp)
        return d.mem_fraction_static, rule
    if rule.name == "tiered-reserve":
        mb = gpu_total_gib * 1024
        reserved = _tiered_reserve_mb(mb, tp * pp)
        if speculative_algorithm:
            reserved += 2 * 1024
        if enable_dp_attention:
            reserved += 4 * 1024
        return round((mb - reserved) / mb, 3), rule
    return legacy_mem_fraction(tp * pp), rule
