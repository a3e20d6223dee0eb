"""No secret is ever shown: credentials in a worker URL reach the engine as a header and
nowhere else (metrics, /admin, dashboard data, error bodies, SSE error events, logs)."""

from __future__ import annotations

import base64
import logging

import pytest

from sglfleet.config import ConfigError, parse_config
from sglfleet.core.redact import redact_argv, redact_text, split_credentials
from tests.core.harness import gateway

USER, PASSWORD = "fleetuser", "s3cr3t-pa55"


async def test_credentials_in_a_worker_url_are_sent_and_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with gateway(1, access_log=True) as gw:
        engine = gw.engines[0]
        url = engine.url.replace("http://", f"http://{USER}:{PASSWORD}@")
        gw.fleet.registry.resolve("m").workers.clear()
        gw.fleet.add_external_worker(gw.fleet.registry.resolve("m"), url, None)
        assert (await gw.chat("hi")).status_code == 200
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        assert engine.headers[-1]["Authorization"] == expected
        engine.behaviour.fail_status = 500
        shown = [(await gw.chat("hi")).text, (await gw.chat("hi", stream=True)).text]
        engine.behaviour.fail_status = None
        engine.behaviour.stall_after = 1
        gw.fleet.registry.resolve("m").deadlines = type(gw.fleet.registry.resolve("m").deadlines)(0.5, 0.3, 5)
        shown.append((await gw.chat("hi", stream=True)).text)
        admin = gw.fleet.cfg.gateway.admin_keys
        assert not admin  # no admin key configured: /admin is open in this harness
        for path in ("/metrics", "/admin/workers", "/admin/models", "/dashboard/api/stats", "/ready"):
            r = await gw.client.get(path)
            shown.append(r.text)
        shown.append(caplog.text)
        for text in shown:
            assert PASSWORD not in text and USER not in text


def test_config_check_refuses_credentials_and_an_api_key_together() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({"models": [{"name": "m", "engine": "external", "api_key": "k",
                                  "urls": [f"http://{USER}:{PASSWORD}@127.0.0.1:9"]}]}, env={})
    assert "credentials" in str(e.value) and PASSWORD not in str(e.value)


def test_a_bad_url_error_never_echoes_the_password() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({"models": [{"name": "m", "engine": "external", "urls": [f"ftp://{USER}:{PASSWORD}@x"]}]}, env={})
    assert PASSWORD not in str(e.value)


def test_redaction_helpers() -> None:
    assert split_credentials("http://a:b@h:1/x") == ("http://h:1/x", "Basic " + base64.b64encode(b"a:b").decode())
    assert split_credentials("http://h:1") == ("http://h:1", None)
    argv = ["python", "-m", "sglang.launch_server", "--api-key", "K1", "--hf-token=K2", "--port", "1",
            "--model-path", "http://u:K3@host/m"]
    shown = " ".join(redact_argv(argv))
    assert not any(k in shown for k in ("K1", "K2", "K3")) and "--port 1" in shown
    line = "launch --api-key K1 --admin-api-key=K2 http://u:K3@h Authorization: Bearer K4"
    assert not any(k in redact_text(line) for k in ("K1", "K2", "K3", "K4"))
