"""`sglfleet deploy compose|systemd|k8s|nginx|grafana|watchdog` and `sglfleet route-sync`."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import typer

from sglfleet.config import ConfigError, FleetConfig, KubernetesDiscoveryConfig
from sglfleet.deploy.plan import DeployError, load_fleet

deploy_app = typer.Typer(help="Render deployments (compose, systemd, Kubernetes, nginx) from a fleet file.",
                         no_args_is_help=True)
FLEET = typer.Argument(..., help="The fleet file (YAML).")
OUT = typer.Option(..., "-o", "--out", help="Directory to write the rendered files into.")


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _load(path: Path) -> FleetConfig:
    try:
        return load_fleet(path)
    except ConfigError as exc:
        lines = "\n".join(f"  {where}: {msg}" for where, msg in exc.problems)
        raise _fail(f"invalid fleet file {path}:\n{lines}", 2) from None


def _emit(target: str, path: Path, out: Path, *, flavor: str = "plain", options: Any = None) -> None:
    from sglfleet.deploy.render import render, write_files

    cfg = _load(path)
    try:
        files = render(target, cfg, flavor=flavor, options=options)
    except (DeployError, KeyError) as exc:
        raise _fail(str(exc).strip("'\"")) from None
    for p in write_files(files, out):
        typer.echo(str(p))


@deploy_app.command()
def compose(fleet: Path = FLEET, out: Path = OUT,
            gateway_image: str = typer.Option(None, help="Image for the sglfleet gateway.")) -> None:
    """docker compose: engines with health-gated start, then the gateway."""
    from sglfleet.deploy.compose import ComposeOptions

    opts = ComposeOptions(**({"gateway_image": gateway_image} if gateway_image else {}))
    _emit("compose", fleet, out, options=opts)


@deploy_app.command()
def systemd(fleet: Path = FLEET, out: Path = OUT,
            sglfleet_bin: str = typer.Option("/usr/local/bin/sglfleet", help="sglfleet on the target host."),
            config_dir: str = typer.Option("/etc/sglfleet", help="Where fleet.yaml and sglfleet.env live."),
            user: str = typer.Option(None, help="Run the units as this user (default root).")) -> None:
    """systemd units: engines, gateway, watchdog service + timer."""
    from sglfleet.deploy.systemd import SystemdOptions

    _emit("systemd", fleet, out, options=SystemdOptions(sglfleet_bin=sglfleet_bin, config_dir=config_dir,
                                                        user=user))


@deploy_app.command()
def k8s(fleet: Path = FLEET, out: Path = OUT,
        flavor: str = typer.Option("plain", help="plain | lws | dynamo"),
        namespace: str = typer.Option("sglfleet", help="Namespace of every object."),
        gateway_image: str = typer.Option(None, help="Image for the sglfleet gateway."),
        node_selector: list[str] = typer.Option([], help="key=value for GPU pods (repeatable)."),
        dynamo_image: str = typer.Option(None, help="Dynamo sglang-runtime image (dynamo flavour)."),
        gateway_replicas: int = typer.Option(2, min=1, help="Gateway replicas (the HPA's minimum, with an HPA)."),
        gateway_hpa_max: int = typer.Option(None, min=1, help="Add a CPU HorizontalPodAutoscaler up to N gateways."),
        gateway_hpa_cpu: int = typer.Option(70, min=1, max=100, help="Target CPU utilization (%) of the HPA."),
        host_network: bool = typer.Option(False, "--host-network",
                                          help="Engine pods on the node's network (RDMA, no RDMA CNI).")) -> None:
    """Kubernetes manifests, one file per object."""
    from sglfleet.deploy.k8s_common import K8sOptions

    selector = {}
    for item in node_selector:
        key, sep, value = item.partition("=")
        if not sep:
            raise _fail(f"--node-selector {item!r} must be key=value")
        selector[key] = value
    opts = K8sOptions(namespace=namespace, node_selector=selector, gateway_replicas=gateway_replicas,
                      gateway_hpa_max=gateway_hpa_max, gateway_hpa_cpu_percent=gateway_hpa_cpu,
                      host_network=host_network)
    if gateway_image:
        opts = dataclasses.replace(opts, gateway_image=gateway_image)
    if dynamo_image:
        opts = dataclasses.replace(opts, dynamo_image=dynamo_image)
    _emit("k8s", fleet, out, flavor=flavor, options=opts)


@deploy_app.command()
def nginx(fleet: Path = FLEET, out: Path = OUT,
          host_route: list[str] = typer.Option(["llm.example.com"], help="Host name routed at / (repeatable)."),
          path_route: list[str] = typer.Option(["www.example.com/llm"], help="host/prefix, prefix stripped."),
          server: list[str] = typer.Option([], help="Upstream host:port (default: the gateway's address)."),
          listen: str = typer.Option("80", help="nginx listen directive argument."),
          upstream_file: str = typer.Option("/etc/nginx/sglfleet-upstream.conf",
                                            help="Upstream file that route-sync rewrites.")) -> None:
    """nginx ingress: host route + path-prefix route, streaming-safe."""
    from sglfleet.deploy.nginx import NginxOptions

    opts = NginxOptions(host_routes=tuple(host_route), path_routes=tuple(path_route), servers=tuple(server),
                        listen=listen, upstream_file=upstream_file)
    _emit("nginx", fleet, out, options=opts)


@deploy_app.command()
def grafana(fleet: Path = typer.Argument(None, help="Fleet file (optional; only validated)"),
            out: Path = OUT) -> None:
    """Grafana dashboard JSON for the gateway's metrics (and SGLang's sglang:* metrics)."""
    if fleet is not None:
        _load(fleet)
    try:
        from sglfleet.deploy.grafana import render_dashboard
    except ModuleNotFoundError as exc:
        raise _fail(f"the Grafana dashboard is not available in this build ({exc.name} is missing)") from None
    out.mkdir(parents=True, exist_ok=True)
    path = out / "sglfleet-dashboard.json"
    path.write_text(json.dumps(render_dashboard(), indent=2) + "\n")
    typer.echo(str(path))


@deploy_app.command()
def watchdog(spec: Path = typer.Argument(..., help="watchdog.json rendered by `deploy systemd`."),
             restart: bool = typer.Option(False, "--restart", help="systemctl restart failing engines."),
             timeout_s: float = typer.Option(30.0, help="Per-request timeout.")) -> None:
    """Check every engine (health + served model); exit 1 if any fails."""
    from sglfleet.deploy import watchdog as wd

    try:
        checks = asyncio.run(wd.check_all(spec, timeout_s))
    except (OSError, ValueError, KeyError) as exc:
        raise _fail(f"cannot read {spec}: {exc}") from None
    failed = 0
    for c in checks:
        typer.echo(f"{c.unit}: {'ok' if c.problem is None else c.problem}")
        if c.problem is not None:
            failed += 1
            if restart:
                error = wd.restart(c.unit)
                typer.echo(f"{c.unit}: {'restarted' if error is None else 'restart failed: ' + error}")
    if failed:
        raise typer.Exit(1)


def route_sync(
    upstream_file: Path = typer.Option(..., help="The nginx upstream file to keep current."),
    from_command: str = typer.Option(None, help="Command printing worker address(es)."),
    from_file: Path = typer.Option(None, help="File listing worker address(es)."),
    from_k8s: str = typer.Option(None, help="Label selector of worker pods (Kubernetes API)."),
    namespace: str = typer.Option("default", help="Namespace for --from-k8s."),
    api_url: str = typer.Option(None, help="Kubernetes API URL (default: in-cluster)."),
    port: int = typer.Option(None, help="Port for addresses given without one."),
    nginx_bin: str = typer.Option("nginx", "--nginx", help="nginx binary."),
    nginx_prefix: str = typer.Option(None, help="nginx -p PREFIX."),
    nginx_conf: str = typer.Option(None, help="nginx -c CONF."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the change; write and reload nothing."),
    allow_empty: bool = typer.Option(False, help="Write an empty upstream when no worker is found."),
) -> None:
    """Point the nginx upstream at the current worker address(es); idempotent."""
    from sglfleet.deploy import routesync as rs

    if sum(x is not None for x in (from_command, from_file, from_k8s)) != 1:
        raise _fail("give exactly one of --from-command, --from-file, --from-k8s")
    try:
        if from_command is not None:
            servers = rs.from_command(from_command, port)
        elif from_file is not None:
            servers = rs.from_file(from_file, port)
        else:
            cfg = KubernetesDiscoveryConfig(namespace=namespace, selector=from_k8s, port=port or 30000,
                                            api_url=api_url)
            servers = rs.from_kubernetes(cfg)
        ctl = rs.NginxCtl(binary=nginx_bin, prefix=nginx_prefix, conf=nginx_conf)
        result = rs.sync(upstream_file, servers, ctl, dry_run=dry_run, allow_empty=allow_empty)
    except rs.RouteSyncError as exc:
        raise _fail(str(exc)) from None
    if not result.changed:
        typer.echo(f"unchanged: {', '.join(result.servers)}")
        return
    typer.echo(result.diff, nl=False)
    typer.echo(("would route" if dry_run else "routed") + f" to {', '.join(result.servers)}"
               + (" (nginx reloaded)" if result.reloaded else ""))


def register(app: typer.Typer) -> None:
    app.add_typer(deploy_app, name="deploy")
    app.command("route-sync")(route_sync)
