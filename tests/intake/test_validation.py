"""Intake's checks on a submitted report, field by field (pure logic, no servers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

import pytest
from pydantic import ValidationError

from services.intake.validation import (
    CREDIT_CODE_ALPHABET,
    ReportSubmission,
    credit_code_check_character,
    credit_code_is_valid,
    make_credit_code,
)
from shared.regions import region_code_problem
from shared.validation_errors import describe_validation_errors
from tests.factories import credit_code, make_report_body

pytestmark = pytest.mark.unit


def problems(body: dict[str, Any]) -> dict[str, str]:
    """{field: reason} for an invalid body; {} when it is valid."""
    try:
        ReportSubmission.model_validate(body)
    except ValidationError as error:
        return {d["field"]: d["reason"] for d in describe_validation_errors(error.errors())}
    return {}


@pytest.mark.parametrize("code", ["91350100M000100Y43", make_credit_code("91320100MA1XY1234"), credit_code(7)])
def test_valid_credit_codes_pass(code: str) -> None:
    assert credit_code_is_valid(code)


@pytest.mark.parametrize(
    "code",
    ["91350100M000100Y44", "91350100M000100Y4", "91350100M000100Y433", "91350100M000100I43", "91350100m000100y43"],
)
def test_wrong_check_character_length_or_alphabet_fails(code: str) -> None:
    assert not credit_code_is_valid(code)


@pytest.mark.parametrize(
    ("code", "valid"),
    [("320102", True), ("110101", True), ("820001", True), ("650102", True), ("320100", False),
     ("320000", False), ("990101", False), ("160101", False), ("32010", False), ("32010a", False)],
)
def test_region_code_must_be_county_level_in_a_real_province(code: str, valid: bool) -> None:
    assert (region_code_problem(code) is None) is valid


@pytest.mark.parametrize(
    ("code", "level", "valid"),
    [("320100", "city", True), ("320102", "city", False), ("320000", "city", False), ("990100", "city", False),
     ("810100", "city", False), ("320000", "province", True), ("810000", "province", True),
     ("320100", "province", False), ("990000", "province", False), ("3200", "province", False)],
)
def test_region_code_of_a_city_or_province(code: str, level: Literal["city", "province"], valid: bool) -> None:
    assert (region_code_problem(code, level) is None) is valid


def test_a_valid_body_has_no_problems_and_its_report_has_no_contact() -> None:
    body = make_report_body(contact={"name": "张三", "phone": "13800001111"})

    submission = ReportSubmission.model_validate(body)

    assert problems(body) == {}
    assert "contact" not in submission.to_report().model_dump()
    assert "张三" not in repr(submission.contact)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"enterprise": {"credit_code": "91350100M000100Y44"}}, "enterprise.credit_code"),
        ({"enterprise": {"industry": "Z"}}, "enterprise.industry"),
        ({"enterprise": {"ownership": "public"}}, "enterprise.ownership"),
        ({"region_code": "320100"}, "region_code"),
        ({"workers_involved": 0}, "workers_involved"),
        ({"workers_involved": 1_000_001}, "workers_involved"),
        ({"workers_involved": 10, "migrant_workers_involved": 11}, "migrant_workers_involved"),
        ({"collective_action": ["strike"]}, "collective_action.0"),
        ({"petition": "twice"}, "petition"),
        ({"online_exposure": "viral"}, "online_exposure"),
        ({"summary": ""}, "summary"),
        ({"summary": "x" * 4001}, "summary"),
        ({"arrears": {"months_overdue": 121}}, "arrears.months_overdue"),
        ({"arrears": {"amount_owed_cny": -1}}, "arrears.amount_owed_cny"),
        ({"arrears": None}, "arrears"),
        ({"dispute": {"dispute_type": "wages", "stage": "mediation"}}, "dispute"),
        ({"occurred_at": "2026-01-10T09:00:00"}, "occurred_at"),
        ({"contact": {"name": "张三", "phone": "call me"}}, "contact.phone"),
        ({"contact": {"name": "张三", "phone": "13800001111", "id_card": "x"}}, "contact.id_card"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_each_bad_field_is_named_with_a_bilingual_reason(overrides: dict[str, Any], field: str) -> None:
    found = problems(make_report_body(**overrides))

    assert field in found, found
    assert " / " in found[field]


@pytest.mark.parametrize(
    ("offset", "valid"),
    [(timedelta(minutes=9), True), (timedelta(minutes=11), False), (-timedelta(days=5 * 365 - 1), True),
     (-timedelta(days=5 * 365 + 3), False)],
)
def test_occurred_at_window_is_ten_minutes_ahead_to_five_years_back(offset: timedelta, valid: bool) -> None:
    body = make_report_body(occurred_at=(datetime.now(UTC) + offset).isoformat())

    assert ("occurred_at" not in problems(body)) is valid


@pytest.mark.parametrize("kind", ["dispute", "stability"])
def test_kind_switch_needs_its_own_block(kind: str) -> None:
    assert problems(make_report_body(kind=kind)) == {}
    assert "arrears" in problems({**make_report_body(kind=kind), "arrears": {
        "amount_owed_cny": 1, "months_overdue": 1, "employer_absconded": False}})


@pytest.mark.parametrize("kind_block", [
    {},
    {"collective_action": ["work_stoppage", "gathering"], "petition": "repeated", "online_exposure": "spreading"},
])
def test_to_report_is_the_report_a_full_validation_gives_and_never_carries_contact(
    kind_block: dict[str, Any],
) -> None:
    """`to_report` skips the second validation: what it gives must still be exactly `Report`'s view of the body,
    serialised without warnings (a subclass instance in a `Report` field), and the event built from it must not
    carry the personal block."""
    import json
    import uuid
    import warnings

    from shared.events import ReportAccepted
    from shared.report import Report

    body = make_report_body(contact={"name": "张三", "phone": "13800001111"}, **kind_block)
    submission = ReportSubmission.model_validate(body)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a PydanticSerializationUnexpectedValue would fail here
        report = submission.to_report()
        expected = Report.model_validate(submission.model_dump(exclude={"contact"}))
        assert type(report) is Report
        assert json.loads(report.model_dump_json()) == json.loads(expected.model_dump_json())
        assert report.model_dump() == expected.model_dump()
        now = datetime.now(UTC)
        event = ReportAccepted(trace_id="t", report_id=str(uuid.uuid4()), unit_id="u", accepted_at=now,
                               report=report, occurred_at=now)
        payload = event.model_dump_json()
    assert "contact" not in json.loads(payload)["report"]
    assert "张三" not in payload
    assert "13800001111" not in payload
    assert "contact" not in report.model_dump()


@pytest.mark.parametrize(("kind", "extra"), [
    ("arrears", {}),
    ("dispute", {"collective_action": ["work_stoppage", "gathering"], "petition": "repeated"}),
    ("stability", {"online_exposure": "spreading", "summary": '引号 "quoted" \\ 反斜杠, 换行\n, emoji 🚧, \u2028'}),
    ("arrears", {"contact": {"name": "张三", "phone": "13800001111"}}),
])
def test_stored_rows_are_the_event_models_own_json(kind: str, extra: dict[str, Any]) -> None:
    """`service.new_report` writes the report JSON and the `report.accepted` payload without building the event
    model per report (`AcceptedEvents`, `ReportSubmission.report_json`): byte for byte what the models give, and
    never the personal block."""
    import uuid

    from cryptography.fernet import Fernet

    from services.intake import service
    from shared.events import ReportAccepted

    submission = ReportSubmission.model_validate(make_report_body(kind=kind, **extra))
    unit_id = str(uuid.uuid4())
    # Now, a whole second (pydantic writes no fraction then) and another zone: the envelope is kept per unit.
    for now in (datetime.now(UTC), datetime(2026, 11, 27, 8, 0, tzinfo=UTC),
                datetime.now(timezone(timedelta(hours=8)))):
        events = service.AcceptedEvents(unit_id, now)
        rows = [service.new_report(unit_id, service.Submission(submission, "", None),
                                   Fernet(Fernet.generate_key()), now, events) for _ in range(2)]

        assert rows[0].id != rows[1].id
        assert rows[0].event_id != rows[1].event_id
        for row in rows:
            expected = ReportAccepted(event_id=uuid.UUID(row.event_id), trace_id=row.id, report_id=row.id,
                                      unit_id=unit_id, accepted_at=now, occurred_at=now,
                                      report=submission.to_report())
            assert row.payload == expected.model_dump_json()
            assert row.body_json == submission.to_report().model_dump_json()
            assert "张三" not in row.payload
            assert "13800001111" not in row.payload
            assert '"contact"' not in row.body_json


@pytest.mark.parametrize("code", [credit_code(n) for n in range(0, 4000, 97)])
def test_the_credit_code_check_is_the_check_character_rule(code: str) -> None:
    assert credit_code_is_valid(code)
    assert code[17] == credit_code_check_character(code[:17])
    for wrong in {char for char in CREDIT_CODE_ALPHABET if char != code[17]}:
        assert not credit_code_is_valid(code[:17] + wrong)
    assert not credit_code_is_valid(code[:17] + "I")  # not in the alphabet
    assert not credit_code_is_valid(code[:16])
    assert not credit_code_is_valid(code + "0")


def test_new_ids_are_distinct_version_4_uuids_as_text() -> None:
    import uuid

    from services.intake import service

    ids = service.new_ids(2000)

    assert len(set(ids)) == 2000
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == text
