"""Native harness: real Kafka (KRaft), PostgreSQL and Prometheus on this machine, and the three services — no Docker.

    python deploy/local/harness.py up [--infra] [--prometheus] [--json]   start in the background, return when ready
    python deploy/local/harness.py run                                    start everything, services in the foreground
    python deploy/local/harness.py down                                   stop everything the harness started
    python deploy/local/harness.py status                                 what runs, where it logs

Every process it starts is recorded in `.run/pids/`; `down` stops exactly those (the whole process group), so no
orphan is left, and `up` twice starts nothing twice. Servers named by the environment are used instead of starting
our own: `KAFKA_BOOTSTRAP_SERVERS` (a broker of yours), `KAFKA_HOME` (a Kafka distribution whose `libs/` to run),
`DATABASE_URL` (a PostgreSQL database of yours). Each process logs to `.run/logs/<name>.log`; when a server does
not come up in time the harness says so and prints the end of that log.

It is run with the project's virtual environment (the Makefile does that), so it can use the project's own Kafka
helpers to create the topics.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN = Path(os.environ.get("HARNESS_RUN_DIR", REPO / ".run"))
LOGS = RUN / "logs"
PIDS = RUN / "pids"
CACHE = REPO / ".cache"

KAFKA_VERSION = "4.4.0"
# Default ports of the servers we start; a taken default is replaced by a free port (remembered in .run/ports.json)
# unless the variable was set explicitly.
DEFAULT_PORTS = {
    "kafka": ("HARNESS_KAFKA_PORT", 39092),
    "kafka_controller": ("HARNESS_KAFKA_CONTROLLER_PORT", 39093),
    "postgres": ("HARNESS_PG_PORT", 55432),
}
PG_DATABASE = "labour_risk"
PROMETHEUS_PORT = int(os.environ.get("HARNESS_PROMETHEUS_PORT", "9090"))
DEV_ADMIN_TOKEN = "dev-admin-token"
SERVICES = {"intake": ("INTAKE_PORT", 8001), "risk": ("RISK_PORT", 8002), "alerts": ("ALERTS_PORT", 8003)}
START_TIMEOUT = float(os.environ.get("HARNESS_START_TIMEOUT", "120"))


class HarnessError(RuntimeError):
    """A server could not be set up; the message says why and where to look."""


def say(message: str) -> None:
    print(f"[harness] {message}", file=sys.stderr, flush=True)


# --- processes we own ----------------------------------------------------------------------------------------------


def pid_file(name: str) -> Path:
    return PIDS / f"{name}.pid"


def running_pid(name: str) -> int | None:
    """The pid recorded for `name` if that process is still alive."""
    path = pid_file(name)
    if not path.exists():
        return None
    try:
        pid = int(path.read_text().split()[0])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError, PermissionError):
        path.unlink(missing_ok=True)
        return None
    if _is_zombie(pid):
        path.unlink(missing_ok=True)
        return None
    return pid


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return False


def spawn(
    name: str, argv: list[str], *, env: dict[str, str] | None = None, cwd: Path = REPO
) -> subprocess.Popen[bytes]:
    """Start a background process in its own session, logging to `.run/logs/<name>.log`, and record its pid."""
    LOGS.mkdir(parents=True, exist_ok=True)
    PIDS.mkdir(parents=True, exist_ok=True)
    log = (LOGS / f"{name}.log").open("ab")
    log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}\n".encode())
    log.flush()
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    pid_file(name).write_text(f"{process.pid}\n")
    say(f"started {name} (pid {process.pid}), log: {LOGS / f'{name}.log'}")
    return process


def stop(name: str, *, timeout: float = 20.0) -> bool:
    """Stop the process group recorded for `name`: SIGTERM, then SIGKILL after `timeout`."""
    pid = running_pid(name)
    if pid is None:
        pid_file(name).unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _group_alive(pid):
        time.sleep(0.1)
    if _group_alive(pid):
        say(f"{name} did not stop within {timeout:.0f}s; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        while _group_alive(pid):
            time.sleep(0.05)
    pid_file(name).unlink(missing_ok=True)
    say(f"stopped {name}")
    return True


def _group_alive(pgid: int) -> bool:
    with contextlib.suppress(OSError):
        os.waitpid(-pgid, os.WNOHANG)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().split(")")[-1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def log_tail(name: str, lines: int = 40) -> str:
    path = LOGS / f"{name}.log"
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_for(what: str, check: Callable[[], bool], *, log: str, timeout: float = START_TIMEOUT,
             alive: Callable[[], bool] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if alive is not None and not alive():
            raise HarnessError(f"{what} exited while starting; end of {LOGS / f'{log}.log'}:\n{log_tail(log)}")
        time.sleep(0.3)
    raise HarnessError(f"{what} was not ready after {timeout:.0f}s; end of {LOGS / f'{log}.log'}:\n{log_tail(log)}")


def require_command(command: str, package: str) -> str:
    """The path of `command`, installing its Debian package when missing and we are root."""
    found = shutil.which(command)
    if found:
        return found
    if os.geteuid() != 0:
        raise HarnessError(f"`{command}` is missing: install the Debian package `{package}` "
                           f"(apt-get install {package})")
    say(f"installing {package} (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True, env=env)
    found = shutil.which(command)
    if not found:
        raise HarnessError(f"installed {package} but `{command}` is still not on PATH")
    return found


def _ports_file() -> Path:
    return RUN / "ports.json"


def port(name: str) -> int:
    """The port of one of our servers: set explicitly, remembered from its first start, or the default."""
    variable, default = DEFAULT_PORTS[name]
    if os.environ.get(variable):
        return int(os.environ[variable])
    remembered = json.loads(_ports_file().read_text()) if _ports_file().exists() else {}
    return int(remembered.get(name, default))


def choose_port(name: str) -> int:
    """The port for a server about to start: `port(name)`, or a free one when another program holds that."""
    current = port(name)
    if not port_open(current):
        return current
    variable, _ = DEFAULT_PORTS[name]
    if os.environ.get(variable):
        raise HarnessError(f"port {current} ({variable}) is taken by another program")
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        free = int(sock.getsockname()[1])
    remembered = json.loads(_ports_file().read_text()) if _ports_file().exists() else {}
    remembered[name] = free
    RUN.mkdir(parents=True, exist_ok=True)
    _ports_file().write_text(json.dumps(remembered))
    say(f"port {current} is taken by another program; {name} uses {free}")
    return free


# --- PostgreSQL ----------------------------------------------------------------------------------------------------


def pg_bin() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if not candidates:
        require_command("psql", "postgresql")  # installs the server package as well
        candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if not candidates:
        raise HarnessError("PostgreSQL server binaries not found: install the Debian package `postgresql`")
    return candidates[-1].parent


def pg_home() -> Path:
    """The cluster's folder: one per run folder (so a second harness instance has its own), outside the checkout
    because the server runs as `postgres` and must own it."""
    digest = hashlib.sha256(str(RUN.resolve()).encode()).hexdigest()[:10]
    return Path(os.environ.get("HARNESS_PG_DIR", f"/var/tmp/labour-risk-{digest}"))


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _postmaster_pid(data: Path) -> int | None:
    try:
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError, IndexError):
        return None


def start_postgres() -> tuple[str, bool]:
    """Start (or reuse) our cluster; returns its SQLAlchemy URL and whether we started it now."""
    home, binary = pg_home(), pg_bin()
    data, sockets = home / "pgdata", home / "sockets"
    if _postmaster_pid(data) is not None and port_open(port("postgres")):
        _create_database(binary, port("postgres"))
        return _pg_url(port("postgres")), False
    pg_port = choose_port("postgres")
    home.mkdir(parents=True, exist_ok=True)
    sockets.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        postgres = pwd.getpwnam("postgres")
        for path in (home, sockets):
            os.chown(path, postgres.pw_uid, postgres.pw_gid)
    if not (data / "PG_VERSION").exists():
        say(f"initialising a PostgreSQL cluster in {data}")
        subprocess.run(
            _as_postgres([str(binary / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                          "--no-locale"]),
            check=True, stdout=subprocess.DEVNULL,
        )
    LOGS.mkdir(parents=True, exist_ok=True)
    log = home / "postgresql.log"
    options = (f"-p {pg_port} -k {sockets} -c listen_addresses=127.0.0.1 -c max_connections=300 "
               "-c shared_buffers=256MB")
    result = subprocess.run(
        _as_postgres([str(binary / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t",
                      str(int(START_TIMEOUT)), "start"]),
        capture_output=True, text=True, check=False,
    )
    _link_log(log, "postgres")
    if result.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-30:] if log.exists() else []
        raise HarnessError(f"PostgreSQL did not start: {result.stderr.strip()}\nlog {log}:\n" + "\n".join(tail))
    say(f"started PostgreSQL on 127.0.0.1:{pg_port}, data {data}, log {log}")
    _create_database(binary, pg_port)
    return _pg_url(pg_port), True


def _pg_url(pg_port: int) -> str:
    return f"postgresql+asyncpg://postgres@127.0.0.1:{pg_port}/{PG_DATABASE}"


def _link_log(target: Path, name: str) -> None:
    link = LOGS / f"{name}.log"
    with contextlib.suppress(OSError):
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)


def _create_database(binary: Path, pg_port: int) -> None:
    psql = [str(binary / "psql"), "-h", "127.0.0.1", "-p", str(pg_port), "-U", "postgres", "-d", "postgres", "-tAc"]
    exists = subprocess.run([*psql, f"SELECT 1 FROM pg_database WHERE datname = '{PG_DATABASE}'"],
                            capture_output=True, text=True, check=True)
    if exists.stdout.strip() != "1":
        subprocess.run([*psql, f'CREATE DATABASE "{PG_DATABASE}"'], check=True, capture_output=True)


def stop_postgres() -> bool:
    data = pg_home() / "pgdata"
    if _postmaster_pid(data) is None:
        return False
    subprocess.run(_as_postgres([str(pg_bin() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                   check=False, capture_output=True)
    say("stopped PostgreSQL")
    return True


# --- Kafka ---------------------------------------------------------------------------------------------------------


def kafka_libs() -> Path:
    """The broker's jars: `$KAFKA_HOME/libs`, or fetched once from Maven Central into `.cache/`."""
    if os.environ.get("KAFKA_HOME"):
        libs = Path(os.environ["KAFKA_HOME"]) / "libs"
        if not libs.is_dir():
            raise HarnessError(f"KAFKA_HOME={os.environ['KAFKA_HOME']} has no libs/ folder")
        return libs
    libs = CACHE / "kafka" / KAFKA_VERSION / "libs"
    if not (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        mvn = require_command("mvn", "maven")
        say(f"fetching Apache Kafka {KAFKA_VERSION} jars from Maven Central into {libs}")
        staging = libs.with_name("libs.partial")
        shutil.rmtree(staging, ignore_errors=True)
        result = subprocess.run(
            [mvn, "-q", "-B", "-f", str(REPO / "deploy" / "local" / "kafka" / "pom.xml"),
             f"-Dkafka.version={KAFKA_VERSION}", "dependency:copy-dependencies", "-DincludeScope=runtime",
             f"-DoutputDirectory={staging}"],
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise HarnessError(f"Maven could not fetch the Kafka jars:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
    return libs


def _kafka_config(data: Path, broker_port: int, controller_port: int) -> Path:
    config = RUN / "kafka" / "server.properties"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        "\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{broker_port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{broker_port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={data}",
            "num.partitions=6",
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=6",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.retention.hours=168",
            "",
        ])
    )
    log4j = RUN / "kafka" / "log4j2.properties"
    log4j.write_text(
        "status = warn\n"
        "appender.console.type = Console\nappender.console.name = STDOUT\n"
        "appender.console.layout.type = PatternLayout\n"
        "appender.console.layout.pattern = [%d] %p %m (%c)%n\n"
        "rootLogger.level = INFO\nrootLogger.appenderRef.stdout.ref = STDOUT\n"
        "logger.kafka.name = kafka\nlogger.kafka.level = WARN\n"
        "logger.apache.name = org.apache.kafka\nlogger.apache.level = WARN\n"
        "logger.state.name = state.change.logger\nlogger.state.level = WARN\n"
    )
    return config


def _java() -> str:
    java = Path(os.environ["JAVA_HOME"]) / "bin" / "java" if os.environ.get("JAVA_HOME") else None
    return str(java) if java and java.exists() else require_command("java", "openjdk-17-jre-headless")


def start_kafka() -> tuple[str, bool]:
    """Start (or reuse) our single-node KRaft broker; returns its bootstrap address and whether we started it."""
    if running_pid("kafka") is not None:
        bootstrap = f"127.0.0.1:{port('kafka')}"
        wait_for("Kafka", lambda: _topics_ready(bootstrap), log="kafka")
        return bootstrap, False
    broker_port, controller_port = choose_port("kafka"), choose_port("kafka_controller")
    bootstrap = f"127.0.0.1:{broker_port}"
    libs, java = kafka_libs(), _java()
    data = RUN / "kafka" / "data"
    config = _kafka_config(data, broker_port, controller_port)
    classpath = f"{libs}/*"
    log4j = f"-Dlog4j2.configurationFile={RUN / 'kafka' / 'log4j2.properties'}"
    if not (data / "meta.properties").exists():
        cluster_id = kafka_cluster_id()
        say(f"formatting Kafka storage in {data}")
        result = subprocess.run(
            [java, log4j, "-cp", classpath, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)],
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise HarnessError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")
    heap = os.environ.get("HARNESS_KAFKA_HEAP", "-Xms256m -Xmx1g").split()
    process = spawn("kafka", [java, *heap, "-XX:+UseG1GC", "-Djava.awt.headless=true", log4j, "-cp", classpath,
                              "kafka.Kafka", str(config)])
    wait_for("Kafka", lambda: _topics_ready(bootstrap), log="kafka", alive=lambda: process.poll() is None)
    say(f"Kafka ready on {bootstrap}")
    return bootstrap, True


def _topics_ready(bootstrap: str) -> bool:
    """Ready means a client can create topics: create the contract topics (idempotent)."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    if not port_open(int(port), host or "127.0.0.1"):
        return False
    result = subprocess.run(
        [sys.executable, "-c", "import asyncio, sys; from shared.kafka import ensure_topics; "
                               "asyncio.run(asyncio.wait_for(ensure_topics(sys.argv[1]), 20))", bootstrap],
        cwd=REPO, capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    return result.returncode == 0


def stop_kafka() -> bool:
    return stop("kafka", timeout=30)


# --- Prometheus ----------------------------------------------------------------------------------------------------


def start_prometheus() -> bool:
    if running_pid("prometheus") is not None:
        return False
    binary = shutil.which("prometheus")
    if binary is None:
        say("prometheus is not installed (apt-get install prometheus); skipping it")
        return False
    if port_open(PROMETHEUS_PORT):
        say(f"port {PROMETHEUS_PORT} is taken; not starting Prometheus (set HARNESS_PROMETHEUS_PORT)")
        return False
    config = _prometheus_config()
    process = spawn("prometheus", [binary, f"--config.file={config}", f"--storage.tsdb.path={RUN / 'prometheus'}",
                                   f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}", "--log.level=warn"])
    wait_for("Prometheus", lambda: _http_ok(f"http://127.0.0.1:{PROMETHEUS_PORT}/-/ready"), log="prometheus",
             alive=lambda: process.poll() is None, timeout=60)
    return True


def _prometheus_config() -> Path:
    """The native config with the services' real ports (they move when INTAKE_PORT etc. are set)."""
    source = REPO / "deploy" / "prometheus" / "prometheus.native.yml"
    text = source.read_text().replace("rules/", f"{source.parent / 'rules'}/")
    for variable, default in SERVICES.values():
        text = text.replace(f"127.0.0.1:{default}", f"127.0.0.1:{os.environ.get(variable, default)}")
    target = RUN / "prometheus.yml"
    target.write_text(text)
    return target


# --- services ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    kafka_bootstrap_servers: str
    database_url: str
    started: list[str]


def service_env(stack: Stack) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("ENVIRONMENT", "development")
    env.setdefault("ADMIN_TOKEN", DEV_ADMIN_TOKEN)
    env["DATABASE_URL"] = stack.database_url
    env["KAFKA_BOOTSTRAP_SERVERS"] = stack.kafka_bootstrap_servers
    env["PYTHONPATH"] = str(REPO)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def service_url(name: str) -> str:
    variable, default = SERVICES[name]
    return f"http://127.0.0.1:{os.environ.get(variable, default)}"


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_services(stack: Stack) -> list[str]:
    started: list[str] = []
    env = service_env(stack)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    for name in SERVICES:
        if running_pid(name) is not None:
            continue
        port = int(service_url(name).rsplit(":", 1)[1])
        if port_open(port):
            raise HarnessError(f"port {port} for {name} is taken by another program; set {SERVICES[name][0]}")
        processes[name] = spawn(name, [sys.executable, "-m", f"services.{name}"], env=env)
        started.append(name)
    for name, process in processes.items():
        wait_for(f"the {name} service", lambda n=name: _http_ok(f"{service_url(n)}/readyz"),  # type: ignore[misc]
                 log=name, alive=lambda p=process: p.poll() is None)  # type: ignore[misc]
        say(f"{name} ready at {service_url(name)}")
    return started


# --- commands ------------------------------------------------------------------------------------------------------


def start_infra() -> Stack:
    started: list[str] = []
    if os.environ.get("DATABASE_URL"):
        database_url = os.environ["DATABASE_URL"]
    else:
        database_url, fresh = start_postgres()
        if fresh:
            started.append("postgres")
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        wait_for(f"Kafka at {bootstrap}", lambda: _topics_ready(bootstrap), log="kafka", timeout=60)
    else:
        bootstrap, fresh = start_kafka()
        if fresh:
            started.append("kafka")
    return Stack(bootstrap, database_url, started)


def stop_all() -> None:
    for name in [*reversed(SERVICES), "prometheus"]:
        stop(name)
    stop_kafka()
    stop_postgres()


def print_urls(stack: Stack) -> None:
    token = os.environ.get("ADMIN_TOKEN", DEV_ADMIN_TOKEN)
    lines = [
        "",
        "Labour-relations risk platform is running / 劳动关系风险监测平台已启动",
        f"  intake  {service_url('intake')}/        (report form / 上报表单, API docs at /docs)",
        f"  risk    {service_url('risk')}/docs",
        f"  alerts  {service_url('alerts')}/inbox   (alert inbox / 预警收件箱)",
    ]
    if running_pid("prometheus") is not None:
        lines.append(f"  prometheus http://127.0.0.1:{PROMETHEUS_PORT}/")
    lines += [
        f"  admin token: {token}" + ("   (development default; set ADMIN_TOKEN to change it)"
                                      if token == DEV_ADMIN_TOKEN else ""),
        f"  Kafka {stack.kafka_bootstrap_servers} · PostgreSQL {stack.database_url}",
        f"  logs: {LOGS}/",
        "",
    ]
    print("\n".join(lines), flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    with _lock():
        stack = start_infra()
        started = list(stack.started)
        if not args.infra:
            started += start_services(stack)
            if args.prometheus and start_prometheus():
                started.append("prometheus")
    if args.json:
        print(json.dumps({"kafka_bootstrap_servers": stack.kafka_bootstrap_servers,
                          "database_url": stack.database_url, "started": started}))
    elif not args.infra:
        print_urls(stack)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Everything in the foreground: Ctrl-C (or SIGTERM) stops what this run started."""
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    started: list[str] = []
    try:
        with _lock():
            stack = start_infra()
            started += stack.started
            started += start_services(stack)
            if start_prometheus():
                started.append("prometheus")
        print_urls(stack)
        print("Press Ctrl-C to stop / 按 Ctrl-C 停止", flush=True)
        while not stopping:
            for name in SERVICES:
                if name in started and running_pid(name) is None:
                    say(f"{name} exited; end of its log:\n{log_tail(name)}")
                    stopping = True
            time.sleep(0.5)
        return 0
    finally:
        say("stopping")
        for name in [*reversed(SERVICES), "prometheus"]:
            if name in started:
                stop(name)
        if "kafka" in started:
            stop_kafka()
        if "postgres" in started:
            stop_postgres()


def cmd_down(args: argparse.Namespace) -> int:
    with _lock():
        stop_all()
    return 0


def cmd_postgres(args: argparse.Namespace) -> int:
    """Stop or start only PostgreSQL (same data, same port): fault tests use it to cut the database off."""
    with _lock():
        if args.action == "stop":
            stop_postgres()
        else:
            start_postgres()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    rows = {name: running_pid(name) for name in ["kafka", *SERVICES, "prometheus"]}
    rows["postgres"] = _postmaster_pid(pg_home() / "pgdata")
    for name, pid in rows.items():
        state = f"running (pid {pid})" if pid else "stopped"
        print(f"{name:<11} {state:<22} log: {LOGS / f'{name}.log'}")
    return 0


def kafka_cluster_id(random_bytes: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """A KRaft cluster id as Kafka's own `Uuid.randomUuid` makes it: URL-safe base64 of 16 random bytes, drawn again
    while it starts with "-" (the storage tool would read such an id after `-t` as an option and refuse it: the
    format then failed about once in 64 starts)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(random_bytes()).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start in the background and return when ready")
    up.add_argument("--infra", action="store_true", help="only Kafka and PostgreSQL")
    up.add_argument("--prometheus", action="store_true", help="also start Prometheus scraping the services")
    up.add_argument("--json", action="store_true", help="print the connection details as JSON")
    up.set_defaults(handler=cmd_up)
    commands.add_parser("run", help="start everything; services in the foreground").set_defaults(handler=cmd_run)
    commands.add_parser("down", help="stop everything the harness started").set_defaults(handler=cmd_down)
    commands.add_parser("status", help="show what runs and where it logs").set_defaults(handler=cmd_status)
    postgres = commands.add_parser("postgres", help="stop or start only PostgreSQL (for fault tests)")
    postgres.add_argument("action", choices=["stop", "start"])
    postgres.set_defaults(handler=cmd_postgres)
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except HarnessError as error:
        say(f"error: {error}")
        return 1
    except subprocess.CalledProcessError as error:
        say(f"error: {error}")
        return 1


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    """One harness command at a time (two `up`s at once would otherwise both start a broker)."""
    import fcntl

    RUN.mkdir(parents=True, exist_ok=True)
    with (RUN / "harness.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


if __name__ == "__main__":
    sys.exit(main())
