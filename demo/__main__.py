"""`python -m demo` (`make demo`): on a running stack, register the directory, run the local webhook receiver,
simulate reports for a few minutes, and print what arrived.

    python -m demo                      # 3 minutes at about 2 reports/s
    python -m demo --minutes 10 --rate 5
    python -m demo --minutes 0          # only the directory (and the body tokens to sign in to the inbox)
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import httpx

from demo.directory import DemoError, DirectoryResult, default_state_path, ensure_directory
from demo.receiver import Receiver, ReceiverServer
from demo.simulator import SimulationResult, levels_of, simulate
from demo.stack import GRAFANA, Stack, discover, grafana_up, not_ready, prometheus_up
from shared import regions

LEVELS = ("red", "orange", "yellow", "blue", "none")
SHOWN_BODIES = ("union-320000", "union-320100", "union-320102", "mediation_centre-320102", "union-320583",
                "labour_inspection-320312")


@dataclass(frozen=True)
class Options:
    minutes: float = 3.0
    rate: float = 2.0
    drain_seconds: float = 20.0
    state_path: Path = field(default_factory=default_state_path)
    seed: int | None = None
    receiver_port: int = 0
    receiver_bind: str = "127.0.0.1"
    receiver_host: str | None = None
    quiet_deliveries: bool = False


@dataclass
class Outcome:
    directory: DirectoryResult
    simulation: SimulationResult
    receiver: Receiver
    levels: Counter[str]


def _say(out: TextIO, text: str = "") -> None:
    print(text, file=out, flush=True)


def _print_directory(out: TextIO, stack: Stack, directory: DirectoryResult, state_path: Path) -> None:
    _say(out, f"机构目录 / Directory: {len(directory.bodies)} bodies ({directory.bodies_created} created, "
              f"{directory.bodies_existing} already there), {len(directory.units)} units "
              f"({directory.units_created} created, {directory.units_existing} already there)")
    _say(out, f"  tokens and keys are kept in {state_path} (owner-only)")
    _say(out, f"收件箱登录 / Sign in to the inbox {stack.alerts}/inbox with a body token:")
    by_key = {spec.key: (spec, token) for spec, token in directory.bodies}
    for key in SHOWN_BODIES:
        if key in by_key:
            spec, token = by_key[key]
            shown = token or "(created by an earlier run without this state file / 由较早的运行创建,令牌未保存)"
            _say(out, f"  {spec.name} ({regions.label(spec.region_code)}): {shown}")


def _wait_for_deliveries(receiver: Receiver, seconds: float, out: TextIO) -> None:
    """Deliveries trail the last report by the pipeline's latency: wait until they stop coming (5 s quiet) or
    `seconds` pass."""
    if seconds <= 0:
        return
    _say(out, f"[demo] waiting up to {seconds:.0f} s for the last deliveries / 等待最后的推送")
    deadline = time.monotonic() + seconds
    seen, quiet_since = len(receiver.deliveries), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        count = len(receiver.deliveries)
        if count != seen:
            seen, quiet_since = count, time.monotonic()
        elif time.monotonic() - quiet_since >= 5 and count:
            return


def _print_summary(out: TextIO, stack: Stack, outcome: Outcome, client: httpx.Client) -> None:
    sim = outcome.simulation
    _say(out)
    _say(out, "汇总 / Summary")
    _say(out, f"  reports sent {sim.sent}: " + ", ".join(f"{k} {v}" for k, v in sorted(sim.sent_by_kind.items())))
    _say(out, "  by scenario: " + ", ".join(f"{k} {v}" for k, v in sorted(sim.sent_by_scenario.items())))
    _say(out, f"  accepted (202) {sim.accepted}" + "".join(
        f", HTTP {status} {count}" for status, count in sorted(sim.answers.items()) if status != 202))
    for error in sim.errors:
        _say(out, f"    refused: {error}")
    _say(out, "  scored levels: " + ", ".join(f"{level} {outcome.levels[level]}" for level in (*LEVELS, "pending")
                                             if outcome.levels[level] or level in LEVELS))
    by_level = outcome.receiver.by_level()
    _say(out, f"  deliveries received {sum(by_level.values())} (signed): "
              + ", ".join(f"{level} {by_level[level]}" for level in LEVELS[:3])
              + (f"; bad signatures {outcome.receiver.bad_signatures()}" if outcome.receiver.bad_signatures() else ""))
    _say(out, "  deliveries by event: " + ", ".join(f"{k} {v}" for k, v in sorted(outcome.receiver.by_event().items())))
    _say(out)
    _say(out, "去看看 / What to open")
    _say(out, f"  {stack.alerts}/inbox       预警收件箱 / alert inbox (sign in with a token above)")
    situation = "态势 / situation map and weekly chart (admin token: all of Jiangsu)"
    if not _answers(client, f"{stack.alerts}/situation"):
        situation += " — not served by this alerts service yet / 当前版本尚未提供"
    _say(out, f"  {stack.alerts}/situation   {situation}")
    _say(out, f"  {stack.intake}/            上报表单 / report form (a unit key is in the state file)")
    if prometheus_up(stack, client):
        _say(out, f"  {stack.prometheus}/graph?g0.expr=sum%20by%20(level)%20(increase(risk_assessments_total%5B5m%5D))"
                  "   Prometheus: assessments by level")
    if grafana_up(client):
        _say(out, f"  {GRAFANA}/dashboards   Grafana: 全链路 / Pipeline, 预警推送 / Alerts, 上报受理 / Intake")
    _say(out, "  README: demo/README.md")


def _answers(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url, timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def run(stack: Stack, options: Options, out: TextIO = sys.stdout) -> Outcome:
    """The whole demo on `stack`; raises DemoError when a service refuses the directory."""
    rng = random.Random(options.seed)
    receiver = Receiver(out=out, quiet=options.quiet_deliveries)
    with httpx.Client(timeout=15) as client, ReceiverServer(
            receiver, options.receiver_port, bind=options.receiver_bind, public_host=options.receiver_host):
        _say(out, f"[demo] webhook receiver on {receiver.base_url}")
        directory = ensure_directory(client, stack, receiver, options.state_path)
        _print_directory(out, stack, directory, options.state_path)
        simulation = SimulationResult()
        if options.minutes > 0:
            _say(out, f"[simulator] {options.minutes:g} min at {options.rate:g} reports/s from "
                      f"{len(directory.units)} units / 模拟上报开始")
            simulation = simulate(client, stack, directory.units, seconds=options.minutes * 60, rate=options.rate,
                                  rng=rng, out=out)
            _wait_for_deliveries(receiver, options.drain_seconds, out)
        levels = levels_of(client, stack, simulation.report_ids) if simulation.report_ids else Counter[str]()
        outcome = Outcome(directory, simulation, receiver, levels)
        if options.minutes > 0:
            _print_summary(out, stack, outcome, client)
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0, help="how long to send reports (default 3; 0: none)")
    parser.add_argument("--rate", type=float, default=2.0, help="reports per second (default 2)")
    parser.add_argument("--drain", type=float, default=20.0,
                        help="seconds to wait for the last deliveries after the last report (default 20)")
    parser.add_argument("--seed", type=int, default=None, help="random seed of the simulation (default: random)")
    parser.add_argument("--state", type=Path, default=None, help="state file (default .run/demo/state.json)")
    parser.add_argument("--receiver-port", type=int, default=0, help="port of the webhook receiver (default: free)")
    parser.add_argument("--receiver-bind", default="127.0.0.1",
                        help="address the receiver listens on (default 127.0.0.1; 0.0.0.0 for docker compose)")
    parser.add_argument("--receiver-host", default=None,
                        help="host the alerts service is told to call (default: the bind address; for docker "
                             "compose, the gateway of the compose network as the containers see it)")
    parser.add_argument("--quiet", action="store_true", help="no line per delivery, only the summary")
    parser.add_argument("--intake", help="intake base URL (default: the harness's, http://127.0.0.1:8001)")
    parser.add_argument("--risk", help="risk base URL (default: the harness's, http://127.0.0.1:8002)")
    parser.add_argument("--alerts", help="alerts base URL (default: the harness's, http://127.0.0.1:8003)")
    parser.add_argument("--admin-token", help="admin token (default: ADMIN_TOKEN, else the development default)")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.minutes < 0:
        parser.error("--rate must be positive and --minutes not negative")
    stack = discover(intake=args.intake, risk=args.risk, alerts=args.alerts, admin_token=args.admin_token)
    with httpx.Client(timeout=5) as client:
        missing = not_ready(stack, client)
    if missing:
        sys.stderr.write("平台未运行 / The platform is not running: " + ", ".join(missing)
                         + "\n  start it first with `make up` (or pass --intake/--risk/--alerts)\n")
        return 2
    options = Options(minutes=args.minutes, rate=args.rate, drain_seconds=args.drain,
                      state_path=args.state or default_state_path(), seed=args.seed,
                      receiver_port=args.receiver_port, receiver_bind=args.receiver_bind,
                      receiver_host=args.receiver_host, quiet_deliveries=args.quiet)
    try:
        outcome = run(stack, options)
    except DemoError as error:
        sys.stderr.write(f"demo: {error}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    return 0 if options.minutes == 0 or outcome.simulation.accepted else 1


if __name__ == "__main__":
    sys.exit(main())
