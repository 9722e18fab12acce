"""Every metric the rules and dashboards query is one the services expose (or a recording rule defines), and
every label they match on is one of that metric's labels. A renamed metric or a typo otherwise shows up only as
an empty panel or an alert that can never fire."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import DEPLOY, REPO, SERVICES

pytestmark = pytest.mark.unit

RULE_FILES = (DEPLOY / "prometheus" / "rules" / "recording.yml", DEPLOY / "prometheus" / "rules" / "alerting.yml")
DASHBOARD_FILES = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
TARGET_LABELS = frozenset({"job", "instance"})  # added by Prometheus at scrape time

# ---- a small PromQL scanner: enough to find metric names and label matchers -----------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<var>\$\{[^}]*\}|\$\w+)
  | (?P<number>(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?:(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*)?)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=,(){}\[\]@])
    """,
    re.VERBOSE,
)
AGGREGATIONS = frozenset({
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
    "quantile", "limitk", "limit_ratio",
})
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "start", "end"})


@dataclass
class Selector:
    metric: str | None
    labels: set[str] = field(default_factory=set)


def _tokens(expr: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(expr):
        match = _TOKEN.match(expr, position)
        if match is None:
            raise ValueError(f"cannot scan PromQL at {expr[position:position + 20]!r} in {expr!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "ws":
            tokens.append((kind, match.group()))
        position = match.end()
    return tokens


def _skip_group(tokens: list[tuple[str, str]], start: int, opening: str, closing: str) -> int:
    """Index just past the bracket that closes the one at `start`."""
    depth = 0
    for index in range(start, len(tokens)):
        if tokens[index][1] == opening:
            depth += 1
        elif tokens[index][1] == closing:
            depth -= 1
            if depth == 0:
                return index + 1
    raise ValueError(f"unbalanced {opening}{closing}")


def selectors(expr: str) -> list[Selector]:
    """The series selectors of a PromQL expression: metric names with the label names they match on. Function
    and aggregation names, keywords, label lists of by/without/on/ignoring/group_*, ranges, strings, numbers
    and Grafana variables are not metric names."""
    tokens = _tokens(expr)
    found: list[Selector] = []
    index = 0
    while index < len(tokens):
        kind, value = tokens[index]
        following = tokens[index + 1][1] if index + 1 < len(tokens) else None
        if kind == "ident" and value in GROUPING:
            index = _skip_group(tokens, index + 1, "(", ")") if following == "(" else index + 1
        elif kind == "ident" and (value in KEYWORDS or following == "(" or
                                  (value in AGGREGATIONS and following in {"by", "without"})):
            index += 1
        elif kind == "ident" or value == "{":
            selector = Selector(metric=value if kind == "ident" else None)
            index += 1 if kind == "ident" else 0
            if index < len(tokens) and tokens[index][1] == "{":
                end = _skip_group(tokens, index, "{", "}")
                selector.labels = {name for name_kind, name in tokens[index + 1:end - 1]
                                   if name_kind == "ident"}
                index = end
            found.append(selector)
        elif value == "[":
            index = _skip_group(tokens, index, "[", "]")
        else:
            index += 1
    return found


# ---- what the services expose ------------------------------------------------------------------------------------


def exposed_metrics() -> dict[str, frozenset[str] | None]:
    """Sample name → its label names (None when unknown), for every metric the services' modules register.
    Counters are exposed with `_total`, histograms as `_bucket` (with `le`), `_sum` and `_count`."""
    from prometheus_client import REGISTRY

    # Importing the modules registers their metrics in the default registry, as in the services.
    importlib.import_module("shared.metrics")
    for service in SERVICES:
        # The service's metrics module and those of its sub-domains (services/intake/screening/metrics.py).
        for module in sorted((REPO / "services" / service).rglob("metrics.py")):
            importlib.import_module(".".join(module.relative_to(REPO).with_suffix("").parts))

    collectors = getattr(REGISTRY, "_names_to_collectors", {})
    exposed: dict[str, frozenset[str] | None] = {}
    for family in REGISTRY.collect():
        name = family.name
        collector = collectors.get(name)
        label_names = getattr(collector, "_labelnames", None) if collector is not None else None
        labels = frozenset(label_names) if label_names is not None else None
        if family.type == "counter":
            exposed[f"{name}_total"] = labels
            exposed[f"{name}_created"] = labels
        elif family.type == "histogram":
            exposed[f"{name}_bucket"] = labels | {"le"} if labels is not None else None
            exposed[f"{name}_sum"] = labels
            exposed[f"{name}_count"] = labels
        elif family.type == "summary":
            exposed[name] = labels | {"quantile"} if labels is not None else None
            exposed[f"{name}_sum"] = labels
            exposed[f"{name}_count"] = labels
        elif family.type == "info":
            exposed[f"{name}_info"] = labels
        else:  # gauge, stateset, unknown
            exposed[name] = labels
    return exposed


def recording_rule_names() -> set[str]:
    loaded = yaml.safe_load(RULE_FILES[0].read_text(encoding="utf-8"))
    return {rule["record"] for group in loaded["groups"] for rule in group["rules"]}


def queries() -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every rule and every dashboard query and variable."""
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                yield f"{path.name}: {rule.get('record') or rule.get('alert')}", rule["expr"]
    for path in DASHBOARD_FILES:
        dashboard: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        for panel in dashboard["panels"]:
            for inner in [panel, *panel.get("panels", [])]:
                for target in inner.get("targets", []):
                    yield f"{path.name}: {inner['title']}", target["expr"]
        for variable in dashboard.get("templating", {}).get("list", []):
            query = variable.get("query")
            text = query.get("query", "") if isinstance(query, dict) else str(query or "")
            # label_values(<selector>, <label>) is Grafana's, not PromQL: keep its selector.
            match = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", text)
            if match:
                yield f"{path.name}: variable {variable['name']}", match.group(1)
            elif text:
                yield f"{path.name}: variable {variable['name']}", text


# ---- the tests ---------------------------------------------------------------------------------------------------


def test_scanner_finds_metric_names_only() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (route, le) (rate(http_request_duration_seconds_bucket'
        '{job="intake", route!~"/healthz|{x}"}[$__rate_interval] offset 5m)))'
        ' / ignoring (level) group_left sum without (instance) (job:http_requests:rate5m) > bool 0.5'
        ' or on () vector(1) and max(up{job=~"a|b"}) unless count(x[5m:1m])'
    )
    found = selectors(expr)
    assert [selector.metric for selector in found] == [
        "http_request_duration_seconds_bucket", "job:http_requests:rate5m", "up", "x",
    ]
    assert found[0].labels == {"job", "route"}
    assert selectors('{__name__="up"}')[0].metric is None


def test_metric_names_are_exposed_by_the_services() -> None:
    known = set(exposed_metrics()) | recording_rule_names() | {"up"}
    unknown = {
        f"{where}: {selector.metric}"
        for where, expr in queries()
        for selector in selectors(expr)
        if selector.metric is not None and selector.metric not in known
    }
    assert not unknown, "metrics that no service exposes:\n" + "\n".join(sorted(unknown))


def test_matched_labels_exist_on_their_metrics() -> None:
    exposed = exposed_metrics()
    assert any(labels is not None for labels in exposed.values()), "no collector tells its label names"
    unknown = set()
    for where, expr in queries():
        for selector in selectors(expr):
            labels = exposed.get(selector.metric or "")
            if labels is None:
                continue  # `up`, recording rules, collectors without label names
            extra = selector.labels - labels - TARGET_LABELS
            if extra:
                unknown.add(f"{where}: {selector.metric} has no label {sorted(extra)}")
    assert not unknown, "\n".join(sorted(unknown))


def test_rules_and_dashboards_cover_the_domain_metrics() -> None:
    """Each domain metric of the services appears somewhere in the dashboards, so that none is forgotten."""
    used = {
        selector.metric
        for path in DASHBOARD_FILES
        for _, expr in queries_of(path)
        for selector in selectors(expr)
    }
    domain = {
        name for name in exposed_metrics()
        if name.startswith(("http_", "kafka_", "intake_", "risk_", "alerts_", "pipeline_"))
        and not name.endswith(("_created", "_sum", "_count"))
    }
    assert domain - used == set()


def queries_of(path: Path) -> Iterator[tuple[str, str]]:
    return ((where, expr) for where, expr in queries() if where.startswith(f"{path.name}:"))
