"""``python -m harness``: up, down, status and images build.

Every expected failure (no engine, unknown service, missing image, a service that will not start) ends in one
clear ``error:`` line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.reports.redact import redact
from harness.settings import Settings, load_settings
from stack import registry
from stack.errors import ConfigError, HarnessError
from stack.files import write_file
from stack.images import DEFAULT_RELEASE, RELEASES, TOOL_IMAGES

if TYPE_CHECKING:
    from harness.stacks.kept import KeptStack

# Outside a terminal (CI logs, pipes) rich would wrap at 80 columns and truncate image names.
console = Console(stderr=True, highlight=False, emoji=False, width=None if sys.stderr.isatty() else 160)
out = Console(highlight=False, emoji=False, width=None if sys.stdout.isatty() else 160)


def _services_arg(text: str) -> list[str]:
    from harness.stacks.engine import validate_services

    try:
        return validate_services(text.split(","))
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _tolerance_arg(text: str) -> float:
    """A fraction >= 0 (0.25 = 25 %)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a fraction >= 0 (0.25 = 25 %), not {text}")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        console.print(f"[red]error:[/red] {message}")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m harness", description="devstack-harness: a containerised dev stack.")
    parser.add_argument("--service-module", action="append", default=[], metavar="REF",
                        help="register a service defined outside the package first: a module name or the path of "
                             "its .py file (repeatable; e.g. examples/memcached/memcached_service.py)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    up = sub.add_parser("up", help="start the stack (or some services) and keep it until `down`")
    up.add_argument("--services", type=_services_arg, default=None,
                    help=f"comma-separated subset of: {','.join(registry.names())} (dependencies are added)")
    up.add_argument("--timings", action="store_true",
                    help="also print the parallel-start benchmark (ratio of whole-stack time to the bound)")
    up.add_argument("--json", action="store_true", help="print the run report as JSON on stdout")

    down = sub.add_parser("down", help="remove stacks started by `up` or kept by `pytest --reuse`")
    down.add_argument("--stale", action="store_true",
                      help="also remove containers/networks of killed runs (owner process gone)")

    sub.add_parser("status", help="list the harness's containers")

    certs = sub.add_parser("certs", help="TLS certificates of the stack started by `up` (or the compose stack)")
    certs.add_argument("--stack", choices=["up", "compose"], default=None,
                       help="which stack: the one started by `up` (default) or the compose stack "
                            "(default when HARNESS_STACK=compose)")
    certs_sub = certs.add_subparsers(dest="certs_command", required=True, parser_class=_Parser)
    certs_sub.add_parser("status", help="serial, not-after and days left of what every TLS listener serves "
                                        "(exit 1 if one is below HARNESS_TLS_MIN_DAYS_LEFT or not Vault's)")
    rotate = certs_sub.add_parser("rotate", help="issue new certificates from Vault and make the running "
                                                 "services use them (live reload where the server has one)")
    rotate.add_argument("--service", action="append", choices=list(registry.names()),
                        help="rotate only this service (repeatable; default: every service with TLS)")

    from harness.drills.kit import drill_names, service_drills
    from stack.drill_ops import FAULT_HELP

    drill = sub.add_parser("drill", help="resilience drills on a stack of their own, with measured figures "
                                         "(docs/drills.md, docs/redis.md)")
    drill.add_argument("kind", choices=[*drill_names(), "upgrade"], metavar="NAME",
                       help="upgrade: data from one release line into a fresh stack of another (--from, --to; "
                            "docs/release-lines.md); "
                            "redis-failover: 3 masters + 1 replica each; redis-node-loss: 3 masters, no replicas; "
                            "redis-partition, latency: 3+3, network faults in one node's namespace (docs/redis.md); "
                            + "; ".join(f"{n}: {d.summary}" for n, (_, d) in service_drills().items()))
    drill.add_argument("--rounds", type=int, default=1, help="rounds to run (bounded by HARNESS_DRILL_MAX_ROUNDS)")
    faults = dict.fromkeys(["kill", "stop", "pause", "disconnect", *FAULT_HELP, "auto", "netem", "nfqueue", "cycle"])
    drill.add_argument("--fault", choices=list(faults),
                       default="cycle", help="the fault of every round; cycle (default) takes the drill's faults in "
                                             "turn (redis-failover: kill, stop, pause, disconnect; a service drill: "
                                             "those its service declares). latency: how to delay (auto = netem, "
                                             "else the NFQUEUE delayer)")
    drill.add_argument("--min-replicas", choices=["0", "1", "both"], default="both",
                       help="redis-partition: min-replicas-to-write of the masters; both (default) alternates")
    drill.add_argument("--full-coverage", choices=["yes", "no", "both"], default="both",
                       help="node loss: cluster-require-full-coverage; both (default) alternates")
    drill.add_argument("--report", type=Path, default=None, help="also write the JSON report here")
    drill.add_argument("--from", dest="from_release", choices=list(RELEASES), default=None,
                       help="upgrade: the old release line (default: HARNESS_RELEASE, else bookworm)")
    drill.add_argument("--to", dest="to_release", choices=list(RELEASES), default=None,
                       help="upgrade: the new release line")
    drill.add_argument("--services", type=_services_arg, default=None,
                       help="upgrade: the services to carry over, one pair each (default: every backed-up service "
                            "with a Debian build)")
    drill.add_argument("--flavor", action="append", default=None, metavar="SERVICE=FLAVOR",
                       help="upgrade: the server on the new line where it offers two (mysql=mysql|mariadb, "
                            "redis=redis|valkey); repeatable")

    backup = sub.add_parser("backup", help="back up, verify and restore the stack started by `up`")
    backup_sub = backup.add_subparsers(dest="backup_command", required=True, parser_class=_Parser)
    create = backup_sub.add_parser("create", help="back up every running service (or --services)")
    create.add_argument("--services", type=_services_arg, default=None)
    create.add_argument("--encrypt", action="store_true", help="AES-256-GCM with a key from --passphrase-file")
    create.add_argument("--passphrase-file", type=Path, default=None, help="mode 0600 file holding the passphrase")
    create.add_argument("--incremental", action="store_true",
                        help="store only artifacts changed since the newest backup (the parent)")
    backup_sub.add_parser("list", help="table of backups: id, created, type, parent, services, size, encrypted")
    check = backup_sub.add_parser("verify", help="recompute checksums, signature, completeness and formats: exit 0 "
                                  "ok and authenticated, 1 on a problem, 3 ok but NOT AUTHENTICATED (no passphrase)")
    check.add_argument("id")
    check.add_argument("--passphrase-file", type=Path, default=None)
    check.add_argument("--allow-unauthenticated", action="store_true",
                       help="exit 0, not 3, for a backup that verifies but is not authenticated (unencrypted)")
    back = backup_sub.add_parser("restore", help="restore a backup into the `up` stack (or --fresh: a new one)")
    back.add_argument("id")
    back.add_argument("--yes", action="store_true", help="required: the restore replaces the services' data")
    back.add_argument("--fresh", action="store_true", help="start a new stack (kept, like `up`) and restore into it")
    back.add_argument("--services", type=_services_arg, default=None)
    back.add_argument("--passphrase-file", type=Path, default=None)
    back.add_argument("--allow-unauthenticated", action="store_true",
                      help="restore a backup that is not authenticated (unencrypted: its checksums catch accidents, "
                           "not a forger)")

    images = sub.add_parser("images", help="image sets")
    images_sub = images.add_subparsers(dest="images_command", required=True, parser_class=_Parser)
    build = images_sub.add_parser("build", help="build the Debian image set (skips unchanged images)")
    build.add_argument("--set", choices=["debian", "auto"], default="auto",
                       help="debian: always build; auto (default): build only when the official images "
                            "are neither present nor pullable")
    buildable = [*(s.name for s in registry.specs() if not s.image_optional), *TOOL_IMAGES]
    build.add_argument("--service", action="append", choices=buildable,
                       help="build only this service's image (repeatable)")
    build.add_argument("--force", action="store_true", help="rebuild even when the context is unchanged")
    image_list = images_sub.add_parser("list", help="show which image each service would run")
    for line_parser in (build, image_list):
        line_parser.add_argument("--release", choices=list(RELEASES), default=None,
                            help="the Debian release line (default: HARNESS_RELEASE, else bookworm)")
        line_parser.add_argument("--flavor", action="append", default=None, metavar="SERVICE=FLAVOR",
                            help="the server of a service where the release offers two (mysql=mysql|mariadb, "
                                 "redis=redis|valkey); repeatable (default: HARNESS_FLAVORS)")

    compose = sub.add_parser("compose", help="the long-lived compose stack (compose/docker-compose.yml)")
    compose_sub = compose.add_subparsers(dest="compose_command", required=True, parser_class=_Parser)
    compose_sub.add_parser("up", help="start or bring back the compose stack: Vault first (init/unseal/bootstrap), "
                           "certificates and credentials into certs/compose, then the rest; waits for logins")
    compose_down = compose_sub.add_parser("down", help="remove the compose stack's containers and network")
    compose_down.add_argument("--volumes", action="store_true",
                              help="also remove its data volumes, Vault's keys and certs/compose (start over)")
    compose_sub.add_parser("status", help="state, health and ports of the compose stack's containers")

    services = sub.add_parser("services", help="the registered services (stack.registry), in order")
    services.add_argument("--matrix", action="store_true",
                          help="print the nightly workflow's per-service job matrix as one line of JSON")

    doctor = sub.add_parser("doctor", help="check the machine (engine, compose, images, ports, stacks, Vault, "
                            "certificates, leftovers, .venv): one line per check with its fix; exit 1 if one fails")
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON (for CI)")

    report = sub.add_parser("report", help="JSON run reports")
    report_sub = report.add_subparsers(dest="report_command", required=True, parser_class=_Parser)
    summarize = report_sub.add_parser("summarize", help="Markdown summary of run reports (e.g. for "
                                      "$GITHUB_STEP_SUMMARY); exit 1 on failed tests or a regression")
    summarize.add_argument("reports", nargs="+", type=Path, metavar="REPORT", help="run report(s), merged")
    summarize.add_argument("--previous", type=Path, default=None, metavar="PREV",
                           help="an earlier run report: compare figures and flag regressions")
    summarize.add_argument("--tolerance", type=_tolerance_arg, default=None, metavar="T",
                           help="allowed slowdown as a fraction (default HARNESS_REPORT_TOLERANCE, 0.25)")
    summarize.add_argument("--output", type=Path, default=None, metavar="FILE",
                           help="also write the Markdown to FILE (replaced)")
    page = report_sub.add_parser("html", help="self-contained HTML page with charts of run reports (start timeline, "
                                 "suites, failures, drills, backup, TLS; trends with --previous)")
    page.add_argument("reports", nargs="+", type=Path, metavar="REPORT", help="run report(s) of this run, merged")
    page.add_argument("--previous", type=Path, action="append", default=[], metavar="PREV",
                      help="an earlier run report (repeat, oldest first): trend of every figure, regressions "
                           "flagged against the last one as `report summarize` flags them")
    page.add_argument("--tolerance", type=_tolerance_arg, default=None, metavar="T",
                      help="allowed slowdown as a fraction (default HARNESS_REPORT_TOLERANCE, 0.25)")
    page.add_argument("-o", "--output", type=Path, default=None, metavar="PATH",
                      help="where to write the page (default: the first REPORT with .html)")
    page.add_argument("--screenshot", type=Path, default=None, metavar="PNG",
                      help="also render the page in headless Chromium and save a PNG of it")
    return parser


def register_service_modules(argv: Sequence[str]) -> None:
    """``--service-module REF`` (repeatable, before the command): register a service defined outside the package
    before anything reads the registry (the parser's choices, the settings' validation). REF is a module name on
    ``sys.path`` or the path of its ``.py`` file (its directory is put on ``sys.path``)."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)  # `--service` is not `--service-module`
    pre.add_argument("--service-module", action="append", default=[])
    known, _ = pre.parse_known_args(argv)
    for ref in known.service_module:
        module = ref
        if ref.endswith(".py"):
            path = Path(ref).resolve()
            if not path.is_file():
                raise SystemExit(f"error: --service-module {ref}: no such file")
            sys.path.insert(0, str(path.parent))
            module = path.stem
        registry.register(module)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    register_service_modules(argv)
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _sigterm)
    try:
        environ = dict(os.environ)
        if getattr(args, "release", None):  # `images build|list --release`: HARNESS_FLAVORS is judged on that line
            environ["HARNESS_RELEASE"] = args.release
        settings = load_settings(environ)
        handler = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "images": cmd_images,
                   "certs": cmd_certs, "drill": cmd_drill, "backup": cmd_backup, "report": cmd_report,
                   "compose": cmd_compose, "services": cmd_services, "doctor": cmd_doctor}[args.command]
        return handler(args, settings)
    except HarnessError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")  # text, never markup: it can quote a forged backup
        return 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]: cleaning up")
        return 130
    finally:  # a caller in the same process (the self-tests) gets its own handler back
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _log(start: float) -> Any:
    def log(line: str) -> None:
        console.print(f"[dim]{time.monotonic() - start:6.1f}s[/dim] {line}")
    return log


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from harness.stacks.engine import Stack, remove_run

    services = args.services or list(registry.names())
    t0 = time.monotonic()
    stack = Stack(settings, keep=True, log=_log(t0))
    console.print(f"run {stack.run_id}: image set [bold]{settings.images}[/bold]")
    try:
        stack.resolve(services)
        _print_images(stack.report.services)
        stack.start(services)
    except BaseException:
        remove_run(stack.client, stack.run_id)
        raise
    failed = dict(stack.errors)
    if failed:
        for name, err in failed.items():
            # Error and log lines can carry the run's passwords (a failed login echoed by a server): masked.
            console.print(f"[red]error:[/red] {escape(f'{name} failed to start: {redact(str(err))}')}")
            tail = stack.logs(name, 30)
            if tail:
                console.print(redact(tail), style="dim", markup=False)
        remove_run(stack.client, stack.run_id)
        console.print("removed the partially started stack")
        return 1
    path = stack.write_state()
    certs = _export_certs(stack.state_dir / "pki", Path("certs"))
    _print_timeline(stack.report.to_json(), args.timings)
    _print_endpoints(stack)
    console.print(f"CA chain and service certificates: {certs}/ (keys 0600)")
    console.print(f"state: {path} (0600). Remove with: python -m harness down")
    if args.json:
        out.print_json(json.dumps(stack.report.to_json(), default=str))
    return 0


def _export_certs(source: Path, target: Path) -> Path:
    """Copy the run's CA chain and service certificates to ``certs/`` for humans (content git-ignored)."""
    for path in sorted(source.rglob("*")):
        dest = target / path.relative_to(source)
        if path.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
            continue
        write_file(dest, path.read_bytes(), path.stat().st_mode & 0o777)
    return target


def _print_images(records: Any) -> None:
    table = Table(title="images", title_justify="left")
    for col in ("service", "image", "source", "why"):
        table.add_column(col)
    for name, rec in records.items():
        table.add_row(name, rec.image or "-", rec.image_source or "-", rec.image_reason)
    console.print(table)


def _print_timeline(report: dict[str, Any], timings: bool) -> None:
    table = Table(title="start timeline (seconds since start)", title_justify="left")
    for col in ("service", "submitted", "ready", "time-to-ready", "status"):
        table.add_column(col, justify="right" if col in ("submitted", "ready", "time-to-ready") else "left")
    for name, rec in report["services"].items():
        table.add_row(name, _fmt(rec["submitted_s"]), _fmt(rec["ready_s"]), _fmt(rec["time_to_ready_s"]),
                      rec["status"])
    console.print(table)
    total = report.get("total_start_s")
    console.print(f"whole stack ready in {_fmt(total)} s")
    steps = report["services"].get("vault", {}).get("bootstrap_s")
    if steps:
        detail = ", ".join(f"{k} {v:.2f}" for k, v in steps.items() if k != "total")
        console.print(f"vault bootstrap {steps['total']:.2f} s ({detail}); included in vault's time-to-ready")
    bench = report.get("benchmark")
    if timings and bench and total:
        console.print(f"benchmark: whole stack {total:.2f} s / (vault {bench['vault_s']:.2f} s + slowest service "
                      f"{bench['slowest_other_s']:.2f} s = {bench['bound_s']:.2f} s) = ratio "
                      f"{report['parallel_ratio']:.3f} (target <= 1.3)")
        console.print(f"benchmark: one-after-another would take {bench['serial_s']:.2f} s (sum of time-to-ready); "
                      f"parallel start is {bench['serial_s'] / total:.2f}x faster")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _print_endpoints(stack: Any) -> None:
    table = Table(title="endpoints (127.0.0.1 only)", title_justify="left")
    table.add_column("service")
    table.add_column("plain")
    table.add_column("TLS (verify against certs/root-ca.pem)")
    for name, service in stack.services.items():
        ep = service.endpoint()
        tls = getattr(ep, "tls", None)
        strict = " [strict]" if tls is not None and tls.strict else ""
        plain, secure = registry.get(name).driver.describe(ep)
        table.add_row(name, "-" if strict else plain, (secure or "-") + strict)
    console.print(table)


def cmd_down(args: argparse.Namespace, settings: Settings) -> int:
    from harness.stacks.docker_env import docker_client
    from harness.stacks.engine import remove_kept, remove_stale
    from harness.stacks.reuse import forget_all
    from harness.stacks.runstate import prune_run_state

    client = docker_client()
    removed = remove_kept(client)
    forget_all(settings.state_dir)  # the records of kept `pytest --reuse` stacks: their containers are gone
    console.print(f"removed {removed} container(s) of stacks started by `up` or kept by `pytest --reuse`")
    if args.stale:
        stale = remove_stale(client)
        console.print(f"removed {stale} container(s) left behind by killed runs")
    pruned = prune_run_state(client, settings.state_dir, settings.keep_run_state)
    if pruned is not None:
        console.print(f"private run state ({settings.state_dir / 'runs'}): removed {len(pruned.removed)} finished "
                      f"run(s), kept the newest {len(pruned.kept)} (HARNESS_KEEP_RUN_STATE={settings.keep_run_state})"
                      f" and {len(pruned.protected)} with containers or a running owner")
        for run_id, why in pruned.failed.items():
            console.print(f"[red]error:[/red] could not remove the state of run {run_id}: {escape(why)}")
        return 1 if pruned.failed else 0
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from harness.stacks.docker_env import docker_client
    from stack.base import LABEL_KEEP, LABEL_RUN_ID, LABEL_SERVICE

    client = docker_client()
    containers = client.containers.list(all=True, filters={"label": LABEL_RUN_ID})
    if not containers:
        console.print("no harness containers")
        return 0
    table = Table()
    for col in ("run", "service", "container", "status", "kept", "ports"):
        table.add_column(col)
    for c in sorted(containers, key=lambda c: (c.labels.get(LABEL_RUN_ID, ""), c.name)):
        ports = ", ".join(f"{k}->{v[0]['HostIp']}:{v[0]['HostPort']}" for k, v in (c.ports or {}).items() if v)
        table.add_row(c.labels.get(LABEL_RUN_ID, ""), c.labels.get(LABEL_SERVICE, ""), c.name, c.status,
                      c.labels.get(LABEL_KEEP, ""), ports)
    out.print(table)
    return 0


def cmd_certs(args: argparse.Namespace, settings: Settings) -> int:
    from harness.stacks.running import RunningStack
    from harness.trust.certs import rotate_certificate, status

    stack: RunningStack
    compose = args.stack == "compose" or (args.stack is None and settings.stack == "compose")
    if compose:
        from harness.stacks.attach import AttachedStack

        attached = AttachedStack(settings)
        attached.start(attached.state.services)
        stack = attached
    else:
        stack = _kept_stack(settings)
    if args.certs_command == "rotate":
        names = args.service or [n for n in stack.running() if getattr(stack.endpoint(n), "tls", None)]
        table = Table(title=f"rotated ({stack.run_id})", title_justify="left")
        for col in ("service", "old serial", "new serial", "applied", "seconds"):
            table.add_column(col, overflow="fold")
        for name in names:
            t0 = time.monotonic()
            done = rotate_certificate(stack, name)
            table.add_row(name, done.old_serial, done.new_serial, done.how, f"{time.monotonic() - t0:.2f}")
        out.print(table)
        if not compose:  # the compose stack keeps its own copy in certs/compose/
            _export_certs(stack.state_dir / "pki", Path("certs"))
    return _print_cert_status(status({n: stack.endpoint(n) for n in stack.running()}), stack.run_id, settings)


def _print_cert_status(rows: list[Any], run_id: str, settings: Settings) -> int:
    table = Table(title=f"served certificates ({run_id}; minimum {settings.tls_min_days_left} days)",
                  title_justify="left")
    for col in ("service", "listener", "serial", "not after (UTC)", "days left", "TLS", "TLS 1.2 suite", "Vault's"):
        table.add_column(col, overflow="fold")
    bad = 0
    for row in rows:
        if isinstance(row, tuple):
            target, error = row
            table.add_row(target.service, f"{target.alias} :{target.port}", "-", "-", "-", "-", "-",
                          f"[red]{error}[/red]")
            bad += 1
            continue
        low = row.days_left < settings.tls_min_days_left
        bad += int(low or not row.matches)
        table.add_row(row.target.service, f"{row.target.alias} :{row.target.port}", row.served_serial,
                      row.not_after.strftime("%Y-%m-%d %H:%M"),
                      f"[red]{row.days_left:.1f}[/red]" if low else f"{row.days_left:.1f}",
                      f"{row.version} {row.cipher}", row.tls12_cipher, "yes" if row.matches else "[red]NO[/red]")
    out.print(table)
    if bad:
        console.print(f"[red]error:[/red] {bad} listener(s) unreachable, not serving the Vault-issued "
                      f"certificate, or below {settings.tls_min_days_left} days")
        return 1
    return 0


def cmd_drill(args: argparse.Namespace, settings: Settings) -> int:
    """Start Vault and a drill cluster, run the rounds (each restores the cluster), print and save figures."""
    from harness.drills.kit import REDIS_DRILLS
    from harness.drills.redis import FAULTS, drill_settings, failover_round, node_loss_round, report
    from harness.drills.verdict import judge
    from harness.stacks.engine import Stack
    from stack.redis_cluster import RedisCluster

    if args.kind == "upgrade":
        return _upgrade_drill(args, settings)
    if not 1 <= args.rounds <= settings.drill_max_rounds:
        console.print(f"[red]error:[/red] --rounds must be between 1 and {settings.drill_max_rounds} "
                      "(HARNESS_DRILL_MAX_ROUNDS)")
        return 2
    if args.kind in ("redis-partition", "latency"):
        return _cmd_net_drill(args, settings)
    if args.kind not in REDIS_DRILLS:
        return _service_drill(args, settings)
    failover = args.kind == "redis-failover"
    if failover and args.fault not in (*FAULTS, "cycle"):
        console.print(f"[red]error:[/red] {args.kind} faults: {', '.join(FAULTS)} or cycle, not {args.fault!r}")
        return 2
    chosen = drill_settings(settings, replicas=1 if failover else 0)
    t0 = time.monotonic()
    stack = Stack(chosen, log=_log(t0))
    rounds: list[Any] = []
    budget = settings.drill_round_timeout_s
    try:
        stack.start(["redis"])
        cluster = stack.require("redis")
        assert isinstance(cluster, RedisCluster)
        for number in range(args.rounds):
            if failover:
                fault = FAULTS[number % len(FAULTS)] if args.fault == "cycle" else args.fault
                console.print(f"round {number}: {fault} a master")
                rounds.append(judge(args.kind, failover_round(cluster, number, fault, timeout=budget), chosen))
            else:
                full = number % 2 == 1 if args.full_coverage == "both" else args.full_coverage == "yes"
                console.print(f"round {number}: stop a master (full coverage {'yes' if full else 'no'})")
                rounds.append(judge(args.kind, node_loss_round(cluster, number, full, timeout=budget), chosen))
    finally:
        stack.close()
    data = report(args.kind, rounds, {"node_timeout_ms": chosen.redis_node_timeout_ms,
                                      "topology": "3+3" if failover else "3+0", "rounds": args.rounds})
    return _drill_done(args, settings, stack.run_id, data)


def _drill_done(args: argparse.Namespace, settings: Settings, run_id: str, data: dict[str, Any]) -> int:
    """Every drill's ending: its table (masked), its JSON report saved, exit 1 when a round had problems (its own,
    or those :func:`harness.drills.verdict.judge` added: the suites' rules)."""
    from harness.drills.redis import drill_lines

    for line in drill_lines(data):
        out.print(redact(line), highlight=False, markup=False)
    path = args.report or settings.state_dir / "drills" / f"{args.kind}-{run_id}.json"
    write_file(path, json.dumps(data, indent=2), 0o644)
    console.print(f"report: {path}")
    if data["failed_rounds"]:
        console.print(f"[red]error:[/red] rounds with problems: {data['failed_rounds']}")
        return 1
    return 0


def _upgrade_drill(args: argparse.Namespace, settings: Settings) -> int:
    """``drill upgrade --from OLD --to NEW``: one pair per service (harness/drills/upgrade.py); exit 1 when a pair did
    not carry everything over and is not a known gap of its service."""
    from dataclasses import asdict
    from datetime import UTC, datetime

    from harness.drills.upgrade import pair_lines, upgrade_pair

    if args.to_release is None:
        console.print("[red]error:[/red] drill upgrade needs --to RELEASE (one of " + ", ".join(RELEASES) + ")")
        return 2
    try:
        old = settings.with_overrides(release=args.from_release or settings.release, flavors=())
        new = settings.with_overrides(release=args.to_release, flavors=tuple(args.flavor or ()))
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    names = args.services or [s for s in registry.with_capability("backup")
                              if s != "vault" and old.image_of(s).debian and new.image_of(s).debian]
    started = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    t0 = time.monotonic()
    pairs = [upgrade_pair(old, new, name, log=_log(t0)) for name in names]
    for line in pair_lines(pairs):
        out.print(redact(line), highlight=False, markup=False)
    failed = [p.service for p in pairs if p.problems]
    data = {"drill": "upgrade", "from": old.release, "to": new.release, "flavors": list(new.flavors),
            "pairs": [asdict(p) for p in pairs], "failed": failed}
    path = args.report or settings.state_dir / "drills" / f"upgrade-{old.release}-{new.release}-{started}.json"
    write_file(path, json.dumps(data, indent=2), 0o644)
    console.print(f"report: {path}")
    if failed:
        console.print(f"[red]error:[/red] pairs that did not carry everything over: {', '.join(failed)}")
        return 1
    return 0


def _service_drill(args: argparse.Namespace, settings: Settings) -> int:
    """A drill a service declares (``ServiceSpec.drills``): Vault and that service on a stack of their own."""
    from harness.drills.kit import pick_fault, service_drills
    from harness.drills.runner import run_service_drill
    from harness.stacks.engine import Stack

    _, drill = service_drills()[args.kind]
    try:
        pick_fault(drill, 0, args.fault)
    except HarnessError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    t0 = time.monotonic()
    stack = Stack(settings, log=_log(t0))
    try:
        data = run_service_drill(stack, args.kind, args.rounds, args.fault, settings.drill_round_timeout_s,
                                 on_round=lambda n, f: console.print(f"round {n}: {f}"))
    finally:
        stack.close()
    return _drill_done(args, settings, stack.run_id, data)


def _cmd_net_drill(args: argparse.Namespace, settings: Settings) -> int:
    """redis-partition / latency (harness/drills/net.py) on a 3+3 cluster of their own."""
    from harness.drills.net import latency_round, net_report, nettools_image, partition_round
    from harness.drills.redis import drill_settings
    from harness.drills.verdict import judge
    from harness.stacks.engine import Stack
    from stack.redis_cluster import RedisCluster

    if args.kind == "latency" and args.fault not in ("cycle", "auto", "netem", "nfqueue"):
        console.print("[red]error:[/red] latency: --fault is how to delay: auto, netem or nfqueue")
        return 2
    if args.kind == "redis-partition" and args.fault != "cycle":
        console.print("[red]error:[/red] redis-partition has one fault (iptables in the node's namespace); "
                      "--fault does not apply")
        return 2
    chosen = drill_settings(settings, replicas=1)
    t0 = time.monotonic()
    stack = Stack(chosen, log=_log(t0))
    rounds: list[Any] = []
    budget = settings.drill_round_timeout_s
    try:
        image = nettools_image(chosen)
        stack.start(["redis"])
        cluster = stack.require("redis")
        assert isinstance(cluster, RedisCluster)
        for number in range(args.rounds):
            if args.kind == "redis-partition":
                floor = number % 2 if args.min_replicas == "both" else int(args.min_replicas)
                console.print(f"round {number}: partition a master (min-replicas-to-write {floor})")
                rounds.append(judge(args.kind, partition_round(
                    cluster, number, floor, budget, image, chosen.drill_partition_peer_timeout_ms,
                    chosen.drill_partition_victim_timeout_ms), chosen))
            else:
                method = "auto" if args.fault == "cycle" else args.fault
                console.print(f"round {number}: delay a master by {chosen.drill_latency_ms} ms ({method})")
                rounds.append(judge(args.kind, latency_round(
                    cluster, number, chosen.drill_latency_ms, method, budget, image), chosen))
    finally:
        stack.close()
    data = net_report(args.kind, rounds, {"node_timeout_ms": chosen.redis_node_timeout_ms, "topology": "3+3",
                                          "rounds": args.rounds, **({"delay_ms": chosen.drill_latency_ms}
                                                                    if args.kind == "latency" else {
                                              "peer_timeout_ms": chosen.drill_partition_peer_timeout_ms,
                                              "victim_timeout_ms": chosen.drill_partition_victim_timeout_ms})})
    return _drill_done(args, settings, stack.run_id, data)


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    from harness.backup.archive import list_backups, read_passphrase

    root = settings.state_dir / "backups"
    passphrase = read_passphrase(args.passphrase_file) if getattr(args, "passphrase_file", None) else None
    if args.backup_command == "list":
        table = Table()
        for col in ("id", "created", "type", "parent", "services", "stored bytes", "encrypted"):
            table.add_column(col, overflow="fold")
        for m in list_backups(root):  # as written, unauthenticated: shown as text, never as markup
            table.add_row(*(escape(cell) for cell in (m.id, m.created, m.type, m.parent or "-", ",".join(m.services),
                                                      str(m.totals.get("stored_bytes", "?")),
                                                      "yes" if m.encryption else "no")))
        out.print(table)
        return 0
    if args.backup_command == "verify":
        return _backup_verify(args, root, passphrase)
    if args.backup_command == "create":
        return _backup_create(args, settings, root, passphrase)
    return _backup_restore(args, settings, root, passphrase)


#: ``backup verify``'s exit code for a backup without a problem that is not authenticated (no passphrase).
EXIT_NOT_AUTHENTICATED = 3


def _backup_verify(args: argparse.Namespace, root: Path, passphrase: bytes | None) -> int:
    """The findings table, then one verdict: a problem is an ``error:`` line (exit 1); else ok and authentic (0),
    or NOT AUTHENTICATED (3, or 0 with --allow-unauthenticated)."""
    from harness.backup.archive import (
        AUTHENTICATED,
        NOT_AUTHENTICATED,
        UNAUTHENTICATED_LIMIT,
        basic_format_check,
        is_authenticated,
        refusal,
        verify,
    )

    t0 = time.monotonic()
    findings = verify(root, args.id, passphrase, basic_format_check)
    table = Table(title=escape(f"verify {args.id} ({time.monotonic() - t0:.3f} s)"), title_justify="left")
    for col in ("artifact", "status", "detail"):
        table.add_column(col, overflow="fold")
    for f in findings:
        table.add_row(escape(f.artifact), escape(f.status) if f.status == "ok" else f"[red]{escape(f.status)}[/red]",
                      escape(f.detail))
    out.print(table)
    refused = refusal(args.id, findings)
    if refused is not None:
        raise refused
    if is_authenticated(findings):
        out.print(f"verdict: ok, {AUTHENTICATED}", markup=False)
        return 0
    if args.allow_unauthenticated:
        out.print(f"verdict: ok, NOT AUTHENTICATED (accepted with --allow-unauthenticated): {UNAUTHENTICATED_LIMIT}",
                  markup=False)
        return 0
    out.print(f"verdict: {NOT_AUTHENTICATED}; to accept it unauthenticated, add --allow-unauthenticated", markup=False)
    return EXIT_NOT_AUTHENTICATED


def _kept_stack(settings: Settings) -> KeptStack:
    """The newest stack left running by ``up``."""
    from harness.stacks.docker_env import docker_client
    from harness.stacks.kept import find_kept_stack

    return find_kept_stack(settings.state_dir, docker_client(), settings.ready_timeout)


def _backup_create(args: argparse.Namespace, settings: Settings, root: Path, passphrase: bytes | None) -> int:
    from harness.backup.archive import list_backups
    from harness.backup.orchestration import create

    if args.encrypt and passphrase is None:
        raise ConfigError("--encrypt needs --passphrase-file")
    if passphrase is not None and not args.encrypt:
        raise ConfigError("--passphrase-file given without --encrypt")
    parent = None
    if args.incremental:
        previous = list_backups(root)
        if not previous:
            raise ConfigError("--incremental needs an earlier backup to build on; run a full backup first")
        parent = previous[-1].id
    t0 = time.monotonic()
    manifest = create(_kept_stack(settings), root, args.services, passphrase, parent, log=console.print)
    console.print(f"backup {manifest.id} ({manifest.type}{', parent ' + parent if parent else ''}): "
                  f"{manifest.totals['stored']} of {manifest.totals['artifacts']} artifacts stored, "
                  f"{manifest.totals['stored_bytes']} bytes, {time.monotonic() - t0:.2f} s -> {root / manifest.id}")
    return 0


def _backup_restore(args: argparse.Namespace, settings: Settings, root: Path, passphrase: bytes | None) -> int:
    from harness.backup.archive import UNAUTHENTICATED_LIMIT, read_artifacts
    from harness.backup.orchestration import restorable, restore_verified
    from harness.stacks import engine

    if not args.yes:
        console.print("[red]error:[/red] restore replaces the services' data; add --yes to go ahead")
        return 2
    t0 = time.monotonic()
    # Verified before any stack is started or touched: a backup that does not verify, or is not authenticated
    # and not allowed to be, restores nothing.
    artifacts = read_artifacts(root, args.id, passphrase, allow_unauthenticated=args.allow_unauthenticated)
    if passphrase is None:  # so allowed: read_artifacts refuses an unauthenticated backup otherwise
        console.print(f"[yellow]note:[/yellow] {escape(f'restoring backup {args.id} NOT AUTHENTICATED')} "
                      f"(--allow-unauthenticated): {UNAUTHENTICATED_LIMIT}")
    wanted = restorable(artifacts, args.services)  # before --fresh starts a stack for them
    if args.fresh:
        stack = engine.Stack(settings, keep=True, log=_log(t0))
        stack.start(wanted)
        timings = restore_verified(stack, artifacts, args.services)
        stack.write_state()
    else:
        timings = restore_verified(_kept_stack(settings), artifacts, args.services)
    detail = ", ".join(f"{k} {v:.2f} s" for k, v in timings.items())
    console.print(f"restored {args.id} in {time.monotonic() - t0:.2f} s ({detail})")
    return 0


def cmd_compose(args: argparse.Namespace, settings: Settings) -> int:
    from harness.stacks import compose_lifecycle

    t0 = time.monotonic()
    if args.compose_command == "down":
        compose_lifecycle.down(settings, volumes=args.volumes, log=_log(t0))
        return 0
    if args.compose_command == "status":
        rows = compose_lifecycle.status(settings)
        if not rows:
            console.print(f"no compose stack (project {settings.compose_project}): start it with "
                          "`python -m harness compose up`")
            return 1
        table = Table()
        for col in ("service", "state", "ports", "image"):
            table.add_column(col)
        for row in rows:
            table.add_row(row["service"], row["state"], row["ports"], row["image"])
        out.print(table)
        return 0 if all(r["state"] == "running (healthy)" for r in rows) else 1
    state = compose_lifecycle.up(settings, log=_log(t0))
    table = Table(title=f"compose stack {state.project} ({'new' if state.vault_initialised_now else 'kept'} Vault)")
    for col in ("service", "image", "source", "ready after (s)"):
        table.add_column(col)
    for name in state.services:
        image = state.images[name]
        table.add_row(name, image["ref"], image["source"], f"{state.time_to_ready_s[name]:.2f}")
    for name, reason in state.unavailable.items():
        table.add_row(name, "-", "left out", reason[:80])
    out.print(table)
    console.print(f"compose up done in {state.total_start_s:.1f}s; endpoints: `python -m harness compose status`; "
                  "suites: `pytest suites/ --stack compose`")
    return 0


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    """Print the Markdown summary of run reports (and write it to --output); exit 2 on unreadable input."""
    from harness.reports.summary import ReportInputError, load_report, load_reports, summarize

    tolerance = settings.report_tolerance if args.tolerance is None else args.tolerance
    if args.report_command == "html":
        return _report_html(args, tolerance)
    try:
        reports = load_reports(args.reports)
        previous = load_report(args.previous) if args.previous is not None else None
    except ReportInputError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        return 2
    summary = summarize(reports, previous, tolerance)
    print(summary.markdown, end="")
    if args.output is not None:
        try:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(summary.markdown)
        except OSError as exc:
            console.print(f"[red]error:[/red] cannot write {escape(str(args.output))}: {exc.strerror or exc}")
            return 2
    return summary.exit_code


def _report_html(args: argparse.Namespace, tolerance: float) -> int:
    """Write the HTML page of run reports; exit 2 on unreadable input or an unwritable output (the verdict is
    `report summarize`'s exit status)."""
    from harness.reports.html import html_path, render, screenshot, write_html
    from harness.reports.summary import ReportInputError, load_reports

    try:
        reports = load_reports(args.reports)
        previous = load_reports(args.previous) if args.previous else []
    except ReportInputError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        return 2
    target = args.output or html_path(args.reports[0])
    try:
        write_html(target, render(reports, previous, tolerance))
    except OSError as exc:
        console.print(f"[red]error:[/red] cannot write {escape(str(target))}: {exc.strerror or exc}")
        return 2
    console.print(f"html report: {target}")
    if args.screenshot is not None:
        console.print(f"screenshot: {screenshot(target, args.screenshot)}")
    return 0


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    """One line per check, with its fix when it fails; exit 1 when one fails."""
    from harness.doctor import FAIL, OK, run_checks, to_json

    t0 = time.monotonic()
    checks = run_checks(settings, Path.cwd())
    if args.json:
        print(json.dumps(to_json(checks), indent=2))
    else:
        table = Table(title="harness doctor", title_justify="left")
        for col in ("check", "status", "detail", "fix"):
            table.add_column(col, overflow="fold")
        colours = {OK: "green", FAIL: "red"}
        for c in checks:
            status = f"[{colours[c.status]}]{c.status}[/]" if c.status in colours else c.status
            table.add_row(escape(c.check), status, escape(redact(c.detail)), escape(c.fix) if c.failed else "")
        out.print(table)
        console.print(f"{len(checks)} checks in {time.monotonic() - t0:.1f} s")
    failed = sum(1 for c in checks if c.failed)
    if failed:
        console.print(f"[red]error:[/red] {failed} check(s) failed; each FAIL line says how to fix it")
    return 1 if failed else 0


def cmd_services(args: argparse.Namespace, settings: Settings) -> int:
    """The registry: each service's marker, dependencies and capabilities; or the workflow's matrix (one group
    per service, selected by its marker), so that a new service gets its nightly job with no workflow edit."""
    specs = registry.specs()
    if args.matrix:
        sys.stdout.write(json.dumps({"include": [{"group": s.name, "marker": s.marker} for s in specs]}) + "\n")
        return 0
    table = Table()
    for col in ("service", "depends on", "capabilities", "module"):
        table.add_column(col)
    for s in specs:
        flags = [f for f in ("tls", "combined_pem", "rotatable_password", "backup", "image_optional") if getattr(s, f)]
        table.add_row(s.name, ", ".join(s.depends_on) or "-", ", ".join(flags), registry.MODULES[s.name])
    out.print(table)
    return 0


def cmd_images(args: argparse.Namespace, settings: Settings) -> int:
    from harness.images import ImageResolver, build_images
    from harness.stacks.docker_env import docker_client
    from stack.registry import CATALOGUE

    if args.release or args.flavor:
        settings = settings.with_overrides(release=args.release or settings.release,
                                           flavors=tuple(args.flavor) if args.flavor else settings.flavors)
    client = docker_client()
    if args.images_command == "list":
        resolver = ImageResolver(client, settings)
        table = Table()
        for col in ("service", "image", "source", "available", "why"):
            table.add_column(col)
        for name in [*CATALOGUE, *TOOL_IMAGES]:
            image = resolver.resolve(name)
            table.add_row(name, image.ref or "-", image.source, "yes" if image.available else "no",
                          image.reason + (" (stale: rebuild)" if image.stale else ""))
        out.print(table)
        return 0
    if args.set == "auto" and settings.images != "debian" and settings.release == DEFAULT_RELEASE:
        resolver = ImageResolver(client, settings.with_overrides(images="official"))
        # Services only: a tool image's official build (netshoot) is pulled by the drill that needs it.
        if all(resolver.resolve(n).available for n in CATALOGUE if CATALOGUE[n].debian):
            console.print("official images are available: nothing to build (use --set debian to build anyway)")
            return 0
    t0 = time.monotonic()
    results = build_images(client, settings, args.service, force=args.force, log=_log(t0))
    table = Table()
    for col in ("service", "image", "result", "seconds"):
        table.add_column(col)
    for r in results:
        table.add_row(r.service, r.tag, r.status, f"{r.seconds:.2f}")
    out.print(table)
    console.print(f"images build done in {time.monotonic() - t0:.2f} s")
    return 0
