"""Prometheus configuration, rules and Grafana dashboards: promtool accepts them, every alert is bilingual and
unit-tested (fires and does not fire), and the dashboards are well-formed Grafana JSON whose PromQL parses."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import DEPLOY, PORTS, REPO

pytestmark = pytest.mark.unit

PROMETHEUS = DEPLOY / "prometheus"
RULE_FILES = (PROMETHEUS / "rules" / "recording.yml", PROMETHEUS / "rules" / "alerting.yml")
ALERT_TESTS = PROMETHEUS / "tests" / "alerting_test.yml"
GRAFANA = DEPLOY / "grafana"
DASHBOARDS = {name: GRAFANA / "dashboards" / f"{name}.json" for name in ("intake", "risk", "alerts", "pipeline")}
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: install Debian's `prometheus` package (apt-get install -y prometheus)")
    return path


def run_promtool(promtool: str, *args: str | Path) -> None:
    result = subprocess.run(
        [promtool, *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"promtool {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alerting_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULE_FILES[1])["groups"] for rule in group["rules"]]


# ---- promtool ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", ["prometheus.native.yml", "prometheus.docker.yml"])
def test_promtool_accepts_config(promtool: str, config: str) -> None:
    # Also loads the rule files, resolved relative to the config file.
    run_promtool(promtool, "check", "config", PROMETHEUS / config)


def test_promtool_accepts_rules(promtool: str) -> None:
    run_promtool(promtool, "check", "rules", *RULE_FILES)


def test_alerting_rules_pass_their_unit_tests(promtool: str) -> None:
    run_promtool(promtool, "test", "rules", ALERT_TESTS)


def test_dashboard_promql_parses(promtool: str, tmp_path: Path) -> None:
    """Every dashboard query, with Grafana's variables filled in, is valid PromQL (checked as recording rules)."""
    rules = []
    for name, path in DASHBOARDS.items():
        for title, expr in dashboard_queries(json.loads(path.read_text(encoding="utf-8"))):
            concrete = (expr.replace("$__rate_interval", "1m").replace("$__interval", "1m")
                        .replace("$__range", "1h").replace("$instance", ".*"))
            assert "$" not in concrete, f"{name}: {title}: unknown Grafana variable in {expr}"
            rules.append({"record": f"dashboard:check:{len(rules)}", "expr": concrete})
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}), encoding="utf-8")
    run_promtool(promtool, "check", "rules", path)


# ---- scrape configs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("config", "host"), [("prometheus.native.yml", "127.0.0.1"), ("prometheus.docker.yml", None)])
def test_scrape_configs_cover_the_three_services(config: str, host: str | None) -> None:
    loaded = load_yaml(PROMETHEUS / config)
    assert loaded["global"]["scrape_interval"] == "5s"
    targets = {
        job["job_name"]: [target for static in job["static_configs"] for target in static["targets"]]
        for job in loaded["scrape_configs"]
    }
    for service, port in PORTS.items():
        assert targets[service] == [f"{host or service}:{port}"]
    # Rule files are resolved relative to the config file: the same relative paths work natively and in compose.
    for rule_file in loaded["rule_files"]:
        assert not Path(rule_file).is_absolute()
        assert (PROMETHEUS / rule_file).is_file(), rule_file


# ---- alerting rules ------------------------------------------------------------------------------------------

EXPECTED_ALERTS = {
    "ServiceDown", "KafkaConsumerLagGrowing", "DeadLetterMessages", "DeliveriesFailing", "RedAlertUnacknowledged",
    "OutboxBacklog", "HighHttpErrorRate", "ProducerResets",
}


def test_the_operators_alerts_exist() -> None:
    assert EXPECTED_ALERTS <= {rule["alert"] for rule in alerting_rules()}


@pytest.mark.parametrize("rule", alerting_rules(), ids=lambda rule: rule["alert"])
def test_alert_has_severity_and_bilingual_annotations(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"critical", "warning"}
    for key in ("summary", "description"):
        text = " ".join(rule["annotations"][key].split())
        chinese, sep, english = text.partition(" / ")
        assert sep, f"{key} should read '中文 / English': {text}"
        assert CJK.search(chinese), f"{key} should start in Chinese: {text}"
        assert re.search(r"[A-Za-z]{3,}", english), f"{key} should end in English: {text}"
        assert not CJK.search(english), f"{key} should end in English: {text}"


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in load_yaml(ALERT_TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alerting_rules()}
    assert names - fired == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown staying quiet"


def test_alert_tests_load_the_rule_files() -> None:
    rule_files = [(ALERT_TESTS.parent / path).resolve() for path in load_yaml(ALERT_TESTS)["rule_files"]]
    assert sorted(rule_files) == sorted(path.resolve() for path in RULE_FILES)


# ---- Grafana -------------------------------------------------------------------------------------------------


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    queries = []
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            queries.extend((inner["title"], target["expr"]) for target in inner.get("targets", []))
    return queries


def test_grafana_datasource_is_provisioned_with_uid_prometheus() -> None:
    loaded = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    (source,) = loaded["datasources"]
    assert source["uid"] == "prometheus"
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"


def test_grafana_dashboard_provider_reads_the_mounted_folder() -> None:
    (provider,) = load_yaml(GRAFANA / "provisioning" / "dashboards" / "dashboards.yml")["providers"]
    assert provider["type"] == "file"
    compose = load_yaml(REPO / "docker-compose.yml")
    mounts = dict(volume.split(":")[:2] for volume in compose["services"]["grafana"]["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_is_well_formed(name: str) -> None:
    dashboard = json.loads(DASHBOARDS[name].read_text(encoding="utf-8"))
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["uid"] == f"labour-risk-{name}"
    chinese, sep, english = dashboard["title"].partition(" / ")
    assert sep, dashboard["title"]
    assert CJK.search(chinese), dashboard["title"]
    assert english.isascii(), dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24, panel["title"]
        assert position["h"] > 0, panel["title"]
        chinese, sep, _ = panel["title"].partition(" / ")
        assert sep, f"titles read '中文 / English': {panel['title']}"
        assert CJK.search(chinese), f"titles read '中文 / English': {panel['title']}"
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}, panel["title"]
        assert panel["targets"], panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "prometheus"
            assert target["expr"].strip(), panel["title"]
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"]["uid"] == "prometheus"


def test_dashboards_have_distinct_uids() -> None:
    uids = [json.loads(path.read_text(encoding="utf-8"))["uid"] for path in DASHBOARDS.values()]
    assert len(uids) == len(set(uids))
