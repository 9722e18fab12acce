"""The labels the inbox's detail panel, timeline and screening tab read cover every value the API can give."""

from __future__ import annotations

import typing

import pytest

from services.alerts.schemas import DeliveryResult, RoundState, TimelineType
from shared.labels import (
    CATALOGUE,
    CHANNELS,
    COLLECTIVE_ACTIONS,
    DELIVERY_RESULTS,
    DISPUTE_STAGES,
    DISPUTE_TYPES,
    ONLINE_EXPOSURES,
    PETITIONS,
    ROUND_STATES,
    STABILITY_EVENTS,
    TIMELINE_EVENTS,
    for_pages,
)
from shared.report import (
    CollectiveAction,
    DisputeStage,
    DisputeType,
    OnlineExposure,
    Petition,
    StabilityEventType,
)

pytestmark = pytest.mark.unit


def test_every_report_detail_value_has_a_label() -> None:
    assert set(DISPUTE_TYPES) == {value.value for value in DisputeType}
    assert set(DISPUTE_STAGES) == {value.value for value in DisputeStage}
    assert set(STABILITY_EVENTS) == {value.value for value in StabilityEventType}
    assert set(COLLECTIVE_ACTIONS) == {value.value for value in CollectiveAction}
    assert set(PETITIONS) == {value.value for value in Petition}
    assert set(ONLINE_EXPOSURES) == {value.value for value in OnlineExposure}


def test_every_timeline_entry_and_round_state_has_a_label() -> None:
    assert set(TIMELINE_EVENTS) == set(typing.get_args(TimelineType))
    assert set(ROUND_STATES) == set(typing.get_args(RoundState))
    assert set(DELIVERY_RESULTS) == set(typing.get_args(DeliveryResult))
    assert set(CHANNELS) == {"webhook", "email", "wecom", "dingtalk"}


def test_the_pages_get_them_under_keys_the_report_form_does_not_use() -> None:
    # The report form keeps its own `dispute_type.*`, `stage.*`, `event_type.*`, `petition.*`, `ca.*` keys.
    groups = {"dispute_kind": DISPUTE_TYPES, "dispute_stage": DISPUTE_STAGES, "stability_event": STABILITY_EVENTS,
              "collective_action": COLLECTIVE_ACTIONS, "petition_status": PETITIONS,
              "online_exposure_level": ONLINE_EXPOSURES, "timeline": TIMELINE_EVENTS, "round_state": ROUND_STATES,
              "delivery_result": DELIVERY_RESULTS, "channel": CHANNELS}
    for group, labels in groups.items():
        assert CATALOGUE[group] is labels
    tables = for_pages()
    assert tables["zh"]["collective_action.road_blocking"] == "堵路"
    assert tables["en"]["dispute_stage.mediation_failed"] == "Mediation failed"
    assert tables["zh"]["timeline.visit"] == "走访"
    assert not {key for key in tables["zh"] if key.split(".")[0] in {"dispute_type", "stage", "event_type",
                                                                      "petition", "ca"}}
