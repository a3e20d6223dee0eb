"""GPU catalog and local detection (NVML through nvidia-ml-py, host RAM through psutil).

Memory figures are what CUDA reports as total device memory, in GiB (SGLang's "GB").
Unified-memory parts (GB10 / DGX Spark) share one pool with the CPU: the budget SGLang
sees is whatever the OS, page cache and other processes leave free at start-up, so the
catalog keeps an OS reserve for them and `free_start_gib` should be measured when possible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# CUDA context + allocator metadata measured before weight loading ("Load weight begin.
# avail mem=..." vs total): about 0.8 GiB on most cards.
CONTEXT_OVERHEAD_GIB = 0.8
# torch.distributed / NCCL / custom all-reduce buffers, from "Init torch distributed ends.
# mem usage=..." in public logs: 0.13 GiB at tp 4 over PCIe (4 x L4), 1.25 GiB at tp 8 over
# NVLink (8 x H100, grok-2 log). Sizes between are taken from the nearer measurement.
DIST_OVERHEAD_GIB = {1: 0.0, 2: 0.13, 4: 0.13, 8: 1.25}

Vendor = Literal["nvidia", "amd"]


def dist_overhead_gib(tp: int) -> float:
    if tp <= 1:
        return 0.0
    return DIST_OVERHEAD_GIB[8] if tp >= 8 else DIST_OVERHEAD_GIB[4]


@dataclass(frozen=True, kw_only=True)
class GPUSpec:
    """One GPU model. `memory_gib` is the total the driver reports (nvidia-smi MiB / 1024),
    which is what SGLang's default-fraction rules read; `nominal_gb` is the vendor figure."""

    name: str
    memory_gib: float
    nominal_gb: float
    arch: str  # ampere, ada, hopper, blackwell (sm120/121), blackwell-dc (sm100), cdna3, cdna4
    source: str  # vendor spec page for nominal_gb
    vendor: Vendor = "nvidia"
    unified: bool = False
    desktop: bool = False  # consumer card: a display/desktop session often holds ~0.5-1 GiB
    os_reserve_gib: float = 0.0  # unified memory only: left to the OS and other processes
    free_tp1_gib: float | None = None  # median "Load weight begin. avail mem" of public logs
    total_measured: bool = True  # False: memory_gib derived from the nominal figure [uncertain]
    aliases: tuple[str, ...] = ()

    def free_start_gib(self, tp: int = 1) -> float:
        """Free memory SGLang will likely measure before loading weights, per GPU."""
        base = self.free_tp1_gib if self.free_tp1_gib is not None else (
            self.memory_gib - self.os_reserve_gib - CONTEXT_OVERHEAD_GIB)
        return base - dist_overhead_gib(tp)


_NV = "https://www.nvidia.com/en-us"
CATALOG: tuple[GPUSpec, ...] = (
    # consumer and workstation cards
    GPUSpec(name="RTX3090", memory_gib=24.0, nominal_gb=24, arch="ampere", desktop=True,
            source=f"{_NV}/geforce/graphics-cards/30-series/rtx-3090-3090ti/",
            aliases=("geforce rtx 3090", "rtx 3090", "3090")),
    GPUSpec(name="RTX4070TiSUPER", memory_gib=15.99, nominal_gb=16, arch="ada", desktop=True,
            source=f"{_NV}/geforce/graphics-cards/40-series/rtx-4070-family/",
            aliases=("geforce rtx 4070 ti super", "rtx 4070 ti super", "4070 ti super", "rtx4070tisuper")),
    GPUSpec(name="RTX4090", memory_gib=23.99, nominal_gb=24, arch="ada", desktop=True,
            source=f"{_NV}/geforce/graphics-cards/40-series/rtx-4090/",
            aliases=("geforce rtx 4090", "rtx 4090", "4090")),
    GPUSpec(name="RTX5080", memory_gib=15.92, nominal_gb=16, arch="blackwell", desktop=True,
            source=f"{_NV}/geforce/graphics-cards/50-series/rtx-5080/",
            aliases=("geforce rtx 5080", "rtx 5080", "5080")),
    GPUSpec(name="RTX5090", memory_gib=31.84, nominal_gb=32, arch="blackwell", desktop=True,
            source=f"{_NV}/geforce/graphics-cards/50-series/rtx-5090/",
            aliases=("geforce rtx 5090", "rtx 5090", "5090")),
    GPUSpec(name="RTXA6000", memory_gib=47.99, nominal_gb=48, arch="ampere",
            source=f"{_NV}/design-visualization/rtx-a6000/", aliases=("rtx a6000", "a6000")),
    GPUSpec(name="RTXPro6000", memory_gib=95.59, nominal_gb=96, arch="blackwell",
            source=f"{_NV}/products/workstations/professional-desktop-gpus/rtx-pro-6000/",
            aliases=("rtx pro 6000 blackwell", "rtx pro 6000", "rtx6000pro")),
    # datacenter
    GPUSpec(name="A10G", memory_gib=22.49, nominal_gb=24, arch="ampere",
            source="https://aws.amazon.com/ec2/instance-types/g5/", aliases=("nvidia a10g", "a10")),
    GPUSpec(name="L4", memory_gib=22.49, nominal_gb=24, arch="ada", source=f"{_NV}/data-center/l4/",
            aliases=("nvidia l4",)),
    GPUSpec(name="L40S", memory_gib=44.99, nominal_gb=48, arch="ada", source=f"{_NV}/data-center/l40s/",
            aliases=("nvidia l40s",)),
    GPUSpec(name="A100-40GB", memory_gib=40.0, nominal_gb=40, arch="ampere", source=f"{_NV}/data-center/a100/",
            aliases=("a100-sxm4-40gb", "a100-pcie-40gb", "a100-40")),
    GPUSpec(name="A100-80GB", memory_gib=80.0, nominal_gb=80, arch="ampere", source=f"{_NV}/data-center/a100/",
            aliases=("a100-sxm4-80gb", "a100 80gb pcie", "a100-80", "a100")),
    GPUSpec(name="H100-SXM", memory_gib=79.65, nominal_gb=80, arch="hopper", source=f"{_NV}/data-center/h100/",
            free_tp1_gib=78.54,  # median of 78.43 / 78.48 / 78.59 / 78.81 in four public logs
            aliases=("h100", "h100 80gb hbm3", "h100-80gb", "h100-sxm5", "h100 sxm")),
    GPUSpec(name="H100-PCIe", memory_gib=79.65, nominal_gb=80, arch="hopper", source=f"{_NV}/data-center/h100/",
            aliases=("h100 pcie", "h100-pcie-80gb", "h100 80gb pcie")),
    GPUSpec(name="H100-NVL", memory_gib=93.58, nominal_gb=94, arch="hopper", source=f"{_NV}/data-center/h100/",
            aliases=("h100 nvl", "h100nvl")),
    GPUSpec(name="H20", memory_gib=95.58, nominal_gb=96, arch="hopper", total_measured=False,
            source="https://www.nvidia.cn/data-center/products/h20/ [uncertain]", aliases=("nvidia h20",)),
    GPUSpec(name="H200", memory_gib=140.4, nominal_gb=141, arch="hopper", source=f"{_NV}/data-center/h200/",
            aliases=("h200", "h200 nvl", "nvidia h200")),
    GPUSpec(name="B200", memory_gib=178.35, nominal_gb=180, arch="blackwell-dc",
            source=f"{_NV}/data-center/dgx-b200/", aliases=("b200", "nvidia b200")),
    GPUSpec(name="B300", memory_gib=279.0, nominal_gb=288, arch="blackwell-dc", total_measured=False,
            source=f"{_NV}/data-center/dgx-b300/", aliases=("b300", "nvidia b300")),
    GPUSpec(name="GB200", memory_gib=184.0, nominal_gb=186, arch="blackwell-dc", total_measured=False,
            source=f"{_NV}/data-center/gb200-nvl72/", aliases=("gb200",)),
    GPUSpec(name="GB300", memory_gib=279.0, nominal_gb=288, arch="blackwell-dc", total_measured=False,
            source=f"{_NV}/data-center/gb300-nvl72/", aliases=("gb300",)),
    # [uncertain] CUDA reports ~119.7 GiB of the 128 GB LPDDR5x on DGX Spark.
    GPUSpec(name="GB10", memory_gib=119.7, nominal_gb=128, arch="blackwell", unified=True, os_reserve_gib=8.0,
            source=f"{_NV}/products/workstations/dgx-spark/", aliases=("nvidia gb10", "dgx spark", "spark")),
    # AMD Instinct: ROCm reports the nominal figure in GiB (MI355X log: 287.18 GiB free at start)
    GPUSpec(name="MI300X", memory_gib=191.98, nominal_gb=192, arch="cdna3", vendor="amd", total_measured=False,
            source="https://www.amd.com/en/products/accelerators/instinct/mi300/mi300x.html",
            aliases=("amd instinct mi300x", "mi300x", "mi300")),
    GPUSpec(name="MI325X", memory_gib=255.98, nominal_gb=256, arch="cdna3", vendor="amd", total_measured=False,
            source="https://www.amd.com/en/products/accelerators/instinct/mi300/mi325x.html",
            aliases=("amd instinct mi325x", "mi325x")),
    GPUSpec(name="MI355X", memory_gib=287.98, nominal_gb=288, arch="cdna4", vendor="amd", total_measured=False,
            source="https://www.amd.com/en/products/accelerators/instinct/mi350/mi355x.html",
            aliases=("amd instinct mi355x", "mi355x")),
)


def _norm(text: str) -> str:
    return " ".join(text.lower().replace("_", " ").replace("nvidia ", "").replace("geforce ", "").split())


def _squash(text: str) -> str:
    return _norm(text).replace(" ", "").replace("-", "")


def find_gpu(name: str) -> GPUSpec:
    """Look a GPU up by catalog name or alias (case-, space- and dash-insensitive).

    NVML names ("NVIDIA H100 80GB HBM3") match by the longest alias they contain, so
    "H100 NVL" never falls back to the 80 GB H100. Unknown names raise KeyError listing
    the known ones (use `--gpu-mem-gib` for anything else)."""
    key = _squash(name)
    for spec in CATALOG:
        if key == _squash(spec.name) or key in (_squash(a) for a in spec.aliases):
            return spec
    best: tuple[int, GPUSpec] | None = None
    for spec in CATALOG:  # substring match, longest alias wins
        for alias in (spec.name, *spec.aliases):
            a = _squash(alias)
            if len(a) > 3 and a in key and (best is None or len(a) > best[0]):
                best = (len(a), spec)
    if best is not None:
        return best[1]
    raise KeyError(f"unknown GPU {name!r}; known: {', '.join(known_gpus())} "
                   "(or give its memory with --gpu-mem-gib)")


def known_gpus() -> list[str]:
    return [s.name for s in CATALOG]


def custom_gpu(memory_gib: float, name: str = "custom") -> GPUSpec:
    """A GPU outside the catalog, from its total memory in GiB."""
    if not 1 <= memory_gib <= 2048:
        raise ValueError(f"--gpu-mem-gib must be between 1 and 2048, got {memory_gib}")
    return GPUSpec(name=name, memory_gib=memory_gib, nominal_gb=memory_gib, arch="unknown",
                   source="given with --gpu-mem-gib")


@dataclass(frozen=True, kw_only=True)
class LocalGPU:
    index: int
    name: str
    total_gib: float
    free_gib: float


@dataclass(frozen=True, kw_only=True)
class HostMemory:
    gpus: tuple[LocalGPU, ...]
    ram_total_gib: float
    ram_available_gib: float
    nvml_error: str | None = None


def detect() -> HostMemory:
    """Local GPUs via NVML (empty when there is no driver) and host RAM via psutil."""
    import psutil

    vm = psutil.virtual_memory()
    gpus: list[LocalGPU] = []
    error: str | None = None
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            for i in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                raw = pynvml.nvmlDeviceGetName(handle)
                name = raw.decode() if isinstance(raw, bytes) else str(raw)
                try:
                    info = pynvml.nvmlDeviceGetMemoryInfo(handle)
                    total, free = info.total / 2**30, info.free / 2**30
                except pynvml.NVMLError:  # GB10 reports no dedicated memory
                    total, free = vm.total / 2**30, vm.available / 2**30
                gpus.append(LocalGPU(index=i, name=name, total_gib=total, free_gib=free))
        finally:
            pynvml.nvmlShutdown()
    except Exception as exc:  # noqa: BLE001 - no library, no driver, no GPU: all mean "none"
        error = f"{type(exc).__name__}: {exc}"
    return HostMemory(
        gpus=tuple(gpus),
        ram_total_gib=vm.total / 2**30,
        ram_available_gib=vm.available / 2**30,
        nvml_error=error,
    )
