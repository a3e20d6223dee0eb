#!/usr/bin/env python3
"""Install sglfleet into ./.venv on a fresh machine, with progress while llama.cpp compiles.

    python3 scripts/install.py            # the runtime: `sglfleet serve` on the embedded model
    python3 scripts/install.py --dev      # + the test and lint tools (the `dev` extra)
    python3 scripts/install.py --extras plot,hub

llama-cpp-python (the embedded CPU engine) ships only as source on PyPI and compiles on
install. We build only what the Python bindings load (libllama and ggml): not the multimodal
library (mtmd/llava) and not llama.cpp's "common" library and its HTTP client, which serve
llama.cpp's own command-line tools (scripts/cmake/llama_cpp_minimal.cmake). That halves the
compile. `CMAKE_ARGS` already set in the environment are kept and win over ours. The full pip log goes to .venv/install.log; the console gets one
line per phase and the compile step's progress, so a long build never looks hung.

Standard library only: this runs before the virtualenv exists.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What sglfleet does not use from llama.cpp (measured in docs/performance.md, "First install").
CMAKE_FLAGS = (
    "-DLLAVA_BUILD=OFF",  # multimodal (mtmd/clip): the bindings' optional part, unused here
    f"-DCMAKE_PROJECT_INCLUDE={ROOT / 'scripts' / 'cmake' / 'llama_cpp_minimal.cmake'}",  # no "common"
)

_NINJA = re.compile(r"^\s*\[(\d+)/(\d+)\]")
_PHASES = (
    (re.compile(r"^Collecting (\S+)"), "collecting {0}"),
    (re.compile(r"^\s*Building wheel for (\S+)"), "building {0} (compiles llama.cpp on a fresh machine)"),
    (re.compile(r"^\s*Created wheel for ([^\s:]+)"), "built {0}"),
    (re.compile(r"^Installing collected packages"), "installing packages"),
    (re.compile(r"^Successfully installed"), "installed"),
)


def cmake_args(existing: str) -> str:
    """Our flags first, the user's after them (CMake lets the last -D win)."""
    return " ".join((*CMAKE_FLAGS, existing)).strip()


def _elapsed(t0: float) -> str:
    s = int(time.monotonic() - t0)
    return f"{s // 60}m{s % 60:02d}s"


def run_pip(python: Path, spec: str, log_path: Path) -> int:
    env = {**os.environ, "CMAKE_ARGS": cmake_args(os.environ.get("CMAKE_ARGS", "")),
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    cmd = [str(python), "-m", "pip", "install", "-v", "-e", spec]
    t0 = time.monotonic()
    last_progress = 0.0
    tail: list[str] = []
    with log_path.open("w") as log, subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            tail = (tail + [line.rstrip()])[-40:]
            m = _NINJA.match(line)
            if m:
                now = time.monotonic()
                done, total = int(m.group(1)), int(m.group(2))
                if now - last_progress >= 5 or done == total:
                    last_progress = now
                    print(f"  [{_elapsed(t0)}] compiling llama.cpp {done}/{total} ({100 * done // total}%)",
                          flush=True)
                continue
            for pattern, text in _PHASES:
                p = pattern.match(line)
                if p:
                    print(f"  [{_elapsed(t0)}] " + text.format(*p.groups()), flush=True)
                    break
        rc = proc.wait()
    if rc != 0:
        print("\n".join(tail), file=sys.stderr)
        print(f"install failed (pip exit {rc}); full log: {log_path}", file=sys.stderr)
    else:
        print(f"  [{_elapsed(t0)}] done (log: {log_path.relative_to(ROOT)})", flush=True)
    return rc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dev", action="store_true", help="also install the dev extra (tests, linters)")
    ap.add_argument("--extras", default="", help="comma-separated extras, e.g. plot,hub")
    ap.add_argument("--venv", default=".venv", help="virtualenv directory (created if missing)")
    args = ap.parse_args(argv)
    extras = [e for e in args.extras.split(",") if e] + (["dev"] if args.dev else [])
    venv = (ROOT / args.venv).resolve()
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating virtualenv {venv}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    spec = "." + (f"[{','.join(extras)}]" if extras else "")
    print(f"installing sglfleet{spec[1:]} into {venv}", flush=True)
    return run_pip(python, spec, venv / "install.log")


if __name__ == "__main__":
    sys.exit(main())
