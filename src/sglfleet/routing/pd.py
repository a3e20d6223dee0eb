"""A prefill/decode disaggregated model: two worker groups, each with its own policy, and a
pair selector (no single-worker `select`: a PD request always needs both sides).

Every request goes to one prefill and one decode worker. Load is counted on both at
dispatch time (SGLang's PD router counted prefill load only once the decode stream started,
and sent all traffic to one prefill worker).
"""

from __future__ import annotations

from dataclasses import dataclass

from sglfleet.config import ModelConfig, TimeoutConfig
from sglfleet.core.route import Decision, RouteContext
from sglfleet.core.worker import Worker
from sglfleet.routing.factory import make_policy
from sglfleet.routing.policies import Policy
from sglfleet.routing.pool import Pool


@dataclass(slots=True)
class PairDecision:
    prefill: Decision
    decode: Decision


class PDPool(Pool):
    def __init__(self, cfg: ModelConfig, *, timeouts: TimeoutConfig | None = None) -> None:
        assert cfg.prefill is not None and cfg.decode is not None
        super().__init__(cfg, timeouts=timeouts)
        self.prefill_policy: Policy = make_policy(cfg.prefill.policy, cfg.cache_aware)
        self.decode_policy: Policy = make_policy(cfg.decode.policy, cfg.cache_aware)

    @property
    def policies(self) -> tuple[Policy, ...]:
        return (self.prefill_policy, self.decode_policy)

    @property
    def prefill_workers(self) -> list[Worker]:
        return [w for w in self.workers if w.role == "prefill"]

    @property
    def decode_workers(self) -> list[Worker]:
        return [w for w in self.workers if w.role == "decode"]

    def has_eligible(self) -> bool:
        return any(w.eligible for w in self.prefill_workers) and any(w.eligible for w in self.decode_workers)

    def select_pair(self, ctx: RouteContext) -> PairDecision:
        p = self.prefill_policy.select(self.prefill_workers, ctx)
        d = self.decode_policy.select(self.decode_workers, ctx)
        if p is None or d is None:
            raise self.unavailable(f"no {'prefill' if p is None else 'decode'} worker is available")
        return PairDecision(p, d)
