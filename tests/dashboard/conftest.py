"""Fixtures for the dashboard tests: a real gateway (embedded model + a model that always
crashes) and headless Chromium driven by Playwright (skipped when either is missing)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fleetproc import GatewayProc, start_gateway

ADMIN_KEY = "dash-admin-key"
BROKEN = "broken"
EMBEDDED = "smollm2-135m"

# Chromium on a machine with a closed network: no background fetches, no sandbox as root.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
]


def find_chromium() -> str | None:
    env = os.environ.get("SGLFLEET_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def fleet_config(tmp: Path) -> dict[str, Any]:
    broken = tmp / "broken.gguf"
    # A GGUF magic and version followed by garbage: llama.cpp refuses it at load, every time.
    broken.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + b"\xff" * 4096)
    return {
        "gateway": {"admin_keys": [ADMIN_KEY]},
        "models": [
            {"name": EMBEDDED, "n_threads": 2},
            {"name": BROKEN, "model_path": str(broken),
             "restart": {"flap_max_crashes": 2, "backoff_initial_s": 0.2, "min_uptime_s": 5}},
        ],
    }


@pytest.fixture(scope="module")
def dash_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProc]:
    tmp = tmp_path_factory.mktemp("dashboard")
    gp = start_gateway(tmp, fleet_config(tmp))
    yield gp
    gp.stop()


# Module scope: Playwright's sync API runs its own event loop on this thread, which must be
# gone before pytest-asyncio runs the async tests of other modules.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests need Playwright: pip install playwright (uses the system Chromium)")
    exe = find_chromium()
    if exe is None:
        pytest.skip("browser tests need Chromium: apt-get install chromium chromium-driver "
                    "(or set SGLFLEET_CHROMIUM to a Chromium binary)")
    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        except PlaywrightError as exc:  # a broken install: say so instead of erroring every test
            pytest.skip(f"Chromium at {exe} does not start: {exc}")
        yield browser
        browser.close()
