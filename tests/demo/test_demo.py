"""`make demo`: the directory is registered once however often it runs, the simulator's reports are valid and
accepted, and the demo's receiver gets deliveries whose signature an independent check accepts.

The end-to-end test runs the demo against the three services started as real processes (on a database and topics
of its own); the others are pure checks of what the demo generates.
"""

from __future__ import annotations

import io
import json
import random
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from demo.__main__ import Options, main, run
from demo.directory import COUNTIES, Unit, body_specs, load_state, unit_specs
from demo.receiver import Receiver, signature_ok
from demo.simulator import credit_code, enterprise_pool, make_report
from demo.stack import Stack
from services.alerts.channels import webhook_signature
from services.intake.validation import ReportSubmission, credit_code_is_valid
from services.risk.scoring.engine import score_report
from services.risk.scoring.rubric import load_rubric
from shared import regions
from tests.conftest import ADMIN_TOKEN, StartService
from tests.support.processes import free_port
from tests.support.receivers import signature_is_valid

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FAKE_PHONE_PREFIX = "1390000"  # every made-up contact phone of the simulator starts so


# --- pure ----------------------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_the_directory_covers_the_province_the_13_cities_and_counties_of_every_city() -> None:
    specs = body_specs()
    assert len({(s.name, s.region_code) for s in specs}) == len(specs)
    assert [(s.name, s.level) for s in specs if s.level == "province"] == [("江苏省总工会", "province")]
    assert sorted(s.region_code for s in specs if s.level == "city") == [c.code for c in regions.cities()]
    assert {s.region_code[:4] + "00" for s in specs if s.level == "county"} == {c.code for c in regions.cities()}
    for spec in specs:
        assert regions.is_known(spec.region_code), spec
        if spec.level == "county":
            assert regions.region(spec.region_code).level == "county"  # type: ignore[union-attr]
    kinds = Counter(s.kind for s in specs if s.level == "county")
    assert kinds["union"] == kinds["mediation_centre"] == sum(len(c) for c in COUNTIES.values())
    assert kinds["labour_inspection"] >= 13
    assert kinds["arbitration"] >= 13
    for busy in ("320100", "320300", "320500"):
        assert len(COUNTIES[busy]) > 2
    names = {s.name for s in specs}
    assert {"南京市玄武区总工会", "南京市玄武区劳动争议调解中心", "南京市玄武区劳动保障监察大队",
            "南京市玄武区劳动人事争议仲裁院", "昆山市总工会", "徐州市鼓楼区总工会", "南京市鼓楼区总工会"} <= names
    assert "南京市玄武区某街道总工会" in {u.name for u in unit_specs()}


@pytest.mark.unit
def test_generated_credit_codes_are_valid_and_the_pool_is_the_same_on_every_run() -> None:
    rng = random.Random(7)
    codes = [credit_code("320102", rng) for _ in range(500)]
    assert all(credit_code_is_valid(code) for code in codes)
    assert all(code.startswith("91320102") for code in codes)
    assert enterprise_pool(["320102"]) == enterprise_pool(["320102"])
    broken = codes[0][:17] + ("0" if codes[0][17] != "0" else "1")
    assert not credit_code_is_valid(broken)


@pytest.mark.unit
def test_simulated_reports_pass_intake_validation_and_score_every_level() -> None:
    units = list(unit_specs())
    pool = enterprise_pool()
    rng = random.Random(3)
    rubric = load_rubric("task7-v1")
    levels: Counter[str] = Counter()
    scenarios: Counter[str] = Counter()
    details: Counter[str] = Counter()
    credit_codes: Counter[str] = Counter()
    for _ in range(600):
        spec = rng.choice(units)
        scenario, body = make_report(Unit(spec.name, spec.region_code, "key"), pool, rng)
        submission = ReportSubmission.model_validate(body)  # raises on anything intake would refuse
        assert body["region_code"] == spec.region_code
        levels[score_report(rubric, submission.to_report()).level.value] += 1
        scenarios[scenario] += 1
        credit_codes[body["enterprise"]["credit_code"]] += 1
        if body["kind"] == "arrears":
            details["industry_" + body["enterprise"]["industry"]] += 1
            details["absconded"] += body["arrears"]["employer_absconded"]
        if body["kind"] == "dispute":
            details[body["dispute"]["stage"]] += 1
        if body["kind"] == "stability":
            details[body["stability"]["event_type"]] += 1
        details["petition"] += body["petition"] != "none"
        details["online"] += body["online_exposure"] != "none"
        details["new_form"] += body["new_employment_form"]
    assert set(levels) == {"red", "orange", "yellow", "blue", "none"}, levels
    assert set(scenarios) == {"arrears", "stability", "dispute", "new_employment_form", "small_dispute"}
    assert details["industry_E"] > 0
    assert details["absconded"] > 0
    assert details["mediation_failed"] > 0
    assert details["closure"] > 0
    assert details["mass_layoff"] > 0
    assert details["petition"] > 0
    assert details["online"] > 0
    assert details["new_form"] > 0
    assert max(credit_codes.values()) > 1  # enterprises repeat: history and alert joins


@pytest.mark.unit
def test_the_receiver_accepts_the_services_signature_and_refuses_others() -> None:
    receiver = Receiver(out=io.StringIO())
    receiver.register("union-320102", "南京市玄武区总工会", "a-secret-of-sixteen-chars")
    raw = json.dumps({"event": "alert.opened", "alert": {"level": "red", "enterprise_name": "南京某公司",
                                                           "url": "http://x/inbox#a"}}).encode()
    good = webhook_signature("a-secret-of-sixteen-chars", raw, int(time.time()))
    assert receiver.handle("/hook/union-320102", {"x-signature": good, "x-delivery-id": "d1"}, raw) == 200
    bad = webhook_signature("another-secret-0123456789", raw, int(time.time()))
    assert receiver.handle("/hook/union-320102", {"x-signature": bad}, raw) == 401
    stale = webhook_signature("a-secret-of-sixteen-chars", raw, int(time.time()) - 600)
    assert not signature_ok(stale, raw, "a-secret-of-sixteen-chars")
    assert receiver.handle("/hook/nobody", {"x-signature": good}, raw) == 404
    assert receiver.by_level() == Counter({"red": 1})
    assert receiver.bad_signatures() == 1
    printed = receiver.out.getvalue()  # type: ignore[attr-defined]
    assert "南京市玄武区总工会  alert.opened  red  南京某公司  (signature ok)  http://x/inbox#a" in printed


@pytest.mark.unit
def test_the_demo_says_so_when_the_platform_is_not_running(capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    code = main(["--intake", closed, "--risk", closed, "--alerts", closed, "--state", str(tmp_path / "s.json")])
    assert code == 2
    assert "make up" in capsys.readouterr().err


# --- end to end ----------------------------------------------------------------------------------------------------


def _listed_bodies(alerts_url: str) -> list[tuple[str, str]]:
    response = httpx.get(f"{alerts_url}/v1/bodies", params={"include_inactive": "true"}, headers=ADMIN, timeout=10)
    assert response.status_code == 200, response.text
    return [(body["name"], body["region_code"]) for body in response.json()]


@pytest.mark.e2e
def test_the_demo_registers_the_directory_once_and_its_reports_reach_its_receiver_signed(
    start_service: StartService, isolated_env: dict[str, str], tmp_path: Path
) -> None:
    intake = start_service("intake", **isolated_env)
    risk = start_service("risk", **isolated_env)
    alerts = start_service("alerts", **isolated_env)
    stack = Stack(intake.url, risk.url, alerts.url, ADMIN_TOKEN, prometheus=None)
    state_path = tmp_path / "state.json"
    expected = {(spec.name, spec.region_code) for spec in body_specs()}

    first = run(stack, Options(minutes=0, state_path=state_path), out=io.StringIO())

    assert first.directory.bodies_created == len(expected)
    assert first.directory.units_created == len(unit_specs())
    assert sorted(_listed_bodies(alerts.url)) == sorted(expected)

    # Again through the command line, and once more as if the state file were lost: the directory is matched by
    # name and region through the API, never registered twice.
    assert main(["--minutes", "0", "--intake", intake.url, "--risk", risk.url, "--alerts", alerts.url,
                 "--admin-token", ADMIN_TOKEN, "--state", str(state_path)]) == 0
    lost = run(stack, Options(minutes=0, state_path=tmp_path / "lost.json"), out=io.StringIO())
    assert lost.directory.bodies_created == 0
    assert lost.directory.bodies_existing == len(expected)
    assert sorted(_listed_bodies(alerts.url)) == sorted(expected)

    out = io.StringIO()
    outcome = run(stack, Options(minutes=10 / 60, rate=3, drain_seconds=40, state_path=state_path, seed=11),
                  out=out)

    assert outcome.directory.bodies_created == 0
    assert outcome.directory.units_created == 0
    assert sorted(_listed_bodies(alerts.url)) == sorted(expected)
    simulation = outcome.simulation
    assert simulation.sent >= 10
    assert simulation.answers == Counter({202: simulation.sent}), simulation.errors
    signed = outcome.receiver.signed()
    assert signed, out.getvalue()
    assert outcome.receiver.bad_signatures() == 0
    secrets = {key: entry["secret"] for key, entry in load_state(state_path)["bodies"].items()}
    for delivery in signed:  # an independent check of the signature, with the secret the demo registered
        assert signature_is_valid(delivery.headers, delivery.raw, secrets[delivery.hook])
        payload = json.loads(delivery.raw)
        assert payload["event"].startswith("alert.")
        assert payload["alert"]["level"] in ("red", "orange", "yellow")
        assert FAKE_PHONE_PREFIX not in delivery.raw.decode()
    printed = out.getvalue()
    assert "汇总 / Summary" in printed
    assert f"accepted (202) {simulation.sent}" in printed
    assert "(signature ok)" in printed
    # Contacts were sent (some reports carry one) but appear in no output and no service log.
    assert simulation.contacts_sent > 0
    assert FAKE_PHONE_PREFIX not in printed
    for service in (intake, risk, alerts):
        assert FAKE_PHONE_PREFIX not in service.log_text()
