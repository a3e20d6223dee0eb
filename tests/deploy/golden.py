"""The golden renders: example fleet file -> target, options, output folder under examples/rendered/.

Regenerate after an intended change:  .venv/bin/python -m tests.deploy.golden
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sglfleet.deploy.k8s_common import K8sOptions
from sglfleet.deploy.nginx import NginxOptions
from sglfleet.deploy.plan import Files, load_fleet
from sglfleet.deploy.render import render

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

# (fleet file, target, flavor, options, output folder)
GOLDEN: list[tuple[str, str, str, Any, str]] = [
    ("deploy-gptoss-gb10", "compose", "plain", None, "compose"),
    ("deploy-qwen-4xl4", "systemd", "plain", None, "systemd"),
    ("deploy-qwen-4xl4", "nginx", "plain", NginxOptions(
        host_routes=("llm.example.com",), path_routes=("www.example.com/llm",),
        servers=("172.31.46.190:8000",)), "nginx"),
    ("deploy-deepseek", "k8s", "dynamo", K8sOptions(), "k8s-dynamo"),
    ("deploy-deepseek", "k8s", "plain", K8sOptions(), "k8s-plain"),
    ("deploy-deepseek", "k8s", "lws", K8sOptions(), "k8s-lws"),
    ("deploy-deepseek", "compose", "plain", None, "compose"),
    ("deploy-deepseek", "systemd", "plain", None, "systemd"),
]


def render_golden(name: str, target: str, flavor: str, options: Any) -> Files:
    return render(target, load_fleet(EXAMPLES / f"{name}.yaml"), flavor=flavor, options=options)


def out_dir(name: str, folder: str) -> Path:
    return EXAMPLES / "rendered" / name / folder


def main() -> None:
    import shutil

    from sglfleet.deploy.render import write_files

    for name, target, flavor, options, folder in GOLDEN:
        d = out_dir(name, folder)
        shutil.rmtree(d, ignore_errors=True)
        for p in write_files(render_golden(name, target, flavor, options), d):
            print(p.relative_to(ROOT))


if __name__ == "__main__":
    main()
