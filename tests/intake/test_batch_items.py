"""The batch's items checked at once (`service.batch_items`) answer exactly as each item checked on its own
(`service.batch_item`, the reference): the same submissions, fingerprints and keys for a batch of valid items, the
same refusals, details included, as soon as one item is unusual. Also what the batch's speed-ups must keep: the
fingerprint's text, the checks `ReportSubmission` no longer repeats, and the process's garbage-collector set-up.
Pure logic, no servers (the route itself: tests/intake/test_batch.py)."""

from __future__ import annotations

import gc
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from services.intake import service
from services.intake.settings import IntakeSettings
from services.intake.validation import ReportSubmission
from shared.http import ApiError
from shared.report import Report
from tests.factories import make_report_body

pytestmark = pytest.mark.unit


def _answer(item: service.Submission | service.InvalidReport) -> tuple[Any, ...]:
    """What the route answers and stores from an item's check, comparable across the two ways of checking."""
    if isinstance(item, ApiError):
        return ("refused", item.status_code, item.code, item.message, item.details)
    return ("valid", item.submission.model_dump(), item.submission.report_json(), item.fingerprint,
            item.idempotency_key)


def _reference(raws: list[Any]) -> list[tuple[Any, ...]]:
    return [_answer(service.batch_item(raw)) for raw in raws]


def _keyed(key: str | None = None, **overrides: Any) -> dict[str, Any]:
    body = make_report_body(**overrides)
    return body if key is None else {**body, "idempotency_key": key}


VALID: list[Any] = [
    _keyed("k-1"),
    _keyed(),
    _keyed("k-2", kind="dispute", contact={"name": "张三", "phone": "13800001111"}),
    _keyed("k" * 128, kind="stability", collective_action=["gathering", "road_blocking"]),
    {**_keyed(), "idempotency_key": None},
]


def test_a_batch_of_valid_items_gives_each_items_own_answer() -> None:
    checked = service.batch_items(VALID)

    assert [_answer(item) for item in checked] == _reference(VALID)
    assert all(isinstance(item, service.Submission) for item in checked)
    # The items are not changed (the route reads nothing else from them, but a caller might).
    assert VALID[0]["idempotency_key"] == "k-1"


@pytest.mark.parametrize("unusual", [
    "not an object",
    None,
    ["a", "list"],
    _keyed("k-3", workers_involved=-3, surprise=True),
    _keyed("k-4", region_code="32010X"),
    {**_keyed(), "enterprise": {"name": "x", "credit_code": "91320100MA1XXXXXX0", "industry": "E",
                                "ownership": "private"}},
    _keyed(""),
    _keyed("x" * 129),
    {**_keyed(), "idempotency_key": 12},
    _keyed("k-5", workers_involved=10, migrant_workers_involved=11),
    {**_keyed("k-6", kind="dispute"), "arrears": {"amount_owed_cny": 1, "months_overdue": 1,
                                                  "employer_absconded": False}},
])
@pytest.mark.parametrize("position", [0, 2, 5])
def test_one_unusual_item_anywhere_gives_every_item_its_own_answer(unusual: Any, position: int) -> None:
    raws = [*VALID[:position], unusual, *VALID[position:]]

    checked = service.batch_items(raws)

    assert [_answer(item) for item in checked] == _reference(raws)
    assert isinstance(checked[position], ApiError)
    assert [isinstance(item, service.Submission) for item in checked] == [
        index != position for index in range(len(raws))]


def test_only_keyed_items_are_fingerprinted_and_the_fingerprint_is_a_single_submissions() -> None:
    keyed, keyless = service.batch_items([_keyed("k-7"), _keyed()])

    assert isinstance(keyed, service.Submission)
    assert isinstance(keyless, service.Submission)
    body = {name: value for name, value in VALID[0].items() if name != "idempotency_key"}
    [again] = service.batch_items([{**body, "idempotency_key": "k"}])
    assert isinstance(again, service.Submission)
    assert again.fingerprint == service.request_fingerprint(json.dumps(body).encode())
    assert keyless.fingerprint == ""  # no key: nothing a retry could be compared by
    assert len(keyed.fingerprint) == 64


@pytest.mark.parametrize("content", [
    make_report_body(summary="工地拖欠 \"45\" 名\n职工\\工资\u2028\x01"),
    {"b": [1, 2.5, 1e16, -0.0, True, None, {"z": 1, "a": [{}]}], "a": "é", "ä": {"y": 10**30}},
])
def test_the_fingerprint_hashes_the_canonical_json_every_stored_fingerprint_hashes(content: Any) -> None:
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    assert service.content_fingerprint(content) == hashlib.sha256(canonical.encode()).hexdigest()


@pytest.mark.parametrize(("overrides", "field"), [
    ({"workers_involved": 10, "migrant_workers_involved": 11}, "migrant_workers_involved"),
    ({"kind": "dispute", "arrears": {"amount_owed_cny": 1, "months_overdue": 1, "employer_absconded": False}},
     "arrears"),
    ({"kind": "stability"}, "stability"),
])
def test_what_reports_own_check_refuses_a_submission_refuses_on_the_field(overrides: dict[str, Any],
                                                                          field: str) -> None:
    """`ReportSubmission` leaves out `Report`'s model-level check of kind blocks and worker counts (its field checks
    refuse the same reports first); `Report` itself still has it."""
    body = make_report_body(**overrides)
    if overrides.get("kind") == "stability":
        body["arrears"] = make_report_body()["arrears"]
        body.pop("stability", None)

    with pytest.raises(ValidationError) as refused:
        ReportSubmission.model_validate(body)
    assert field in {".".join(map(str, error["loc"])) for error in refused.value.errors()}
    with pytest.raises(ValidationError):
        Report.model_validate({name: value for name, value in body.items() if name != "contact"})


def test_the_served_process_freezes_start_up_and_collects_less_often() -> None:
    """`python -m services.intake` (and each worker app) calls `tune_garbage_collector` with its setting; run in a
    child process: the test process's collector stays as it is."""
    assert IntakeSettings.model_fields["gc_thresholds"].default == (100_000, 20, 10)
    code = ("import gc; from shared.runtime import tune_garbage_collector; "
            "tune_garbage_collector((50_000, 15, 5)); print(gc.get_threshold(), gc.get_freeze_count() > 1000)")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           cwd=Path(__file__).parents[2]).stdout

    assert shown.split() == ["(50000,", "15,", "5)", "True"]
    assert gc.get_threshold() != (50_000, 15, 5)
