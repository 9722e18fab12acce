"""The stored webhook payloads are built once per language and spliced per body (`service.ReceiptSplice`): each
body's text must be byte for byte the full serialisation of the payload with that body's receipt link, since a
receiver checks the signature against exactly those bytes."""

from __future__ import annotations

import pytest

from services.alerts import receipts
from services.alerts.schemas import WebhookPayload
from services.alerts.service import ReceiptSplice, with_receipt_link
from services.alerts.settings import DEVELOPMENT_LINK_SECRET
from shared.events import utcnow
from tests.alerts.conftest import ADMIN, AlertsWorld, make_assessed

pytestmark = pytest.mark.integration

RED = {"workers_involved": 320, "collective_action": ["road_blocking"]}
# Report text that looks like the spliced field and like the splice's placeholder must stay where it is.
TRICKY = '"receipt_url":null, "receipt_url": "x", receipt-url-0123 \\ "quotes" </script> 欠薪 \u2028'


@pytest.mark.asyncio(loop_scope="session")
async def test_each_bodys_payload_is_the_full_serialisation_with_its_own_link(alerts: AlertsWorld) -> None:
    region = "320211"
    bodies = [
        await alerts.body(region_code=region, name="滨湖区总工会"),
        await alerts.body(kind="mediation_centre", region_code=region, name="滨湖区调解中心"),
    ]
    english = await alerts.client.post("/v1/bodies", headers=ADMIN, json={
        "name": "Binhu labour inspection", "kind": "labour_inspection", "level": "county", "region_code": region,
        "language": "en", "channels": [{"type": "email", "address": "inspect@example.org"}]})
    assert english.status_code == 201, english.text
    event = make_assessed(region_code=region, summary=TRICKY, **RED)
    await alerts.publish(event)
    alert = await alerts.alert_for(event.report_id)

    rows = await alerts.rows("SELECT body_id, payload FROM alerts.deliveries WHERE alert_id = :a",
                             a=alert["alert_id"])
    told = {body_id for body_id, _ in rows}
    assert {body["body_id"] for body in bodies} | {english.json()["body_id"]} <= told
    languages = set()
    links: dict[str, set[str]] = {}
    for body_id, text in rows:
        payload = WebhookPayload.model_validate_json(text)
        link = payload.alert.receipt_url
        assert link is not None
        # The stored text is what serialising the whole payload with this body's link gives, byte for byte.
        assert with_receipt_link(payload, link).model_dump_json() == text
        assert receipts.verify(DEVELOPMENT_LINK_SECRET, link.rsplit("/", 1)[1], utcnow()).body_id == body_id
        assert payload.report["summary"] == TRICKY
        languages.add(payload.language)
        links.setdefault(body_id, set()).add(link)
    assert languages == {"zh-en", "en"}
    # One link per body (the same on each of its channels), none shared between bodies.
    assert all(len(own) == 1 for own in links.values())
    assert len(set.union(*links.values())) == len(told)


@pytest.mark.asyncio(loop_scope="session")
async def test_the_splice_equals_the_full_serialisation_for_any_link(alerts: AlertsWorld) -> None:
    region = "320213"
    await alerts.body(region_code=region, name="梁溪区总工会")
    event = make_assessed(region_code=region, summary=TRICKY, **RED)
    await alerts.publish(event)
    alert = await alerts.alert_for(event.report_id)
    text = await alerts.scalar("SELECT payload FROM alerts.deliveries WHERE alert_id = :a LIMIT 1",
                               a=alert["alert_id"])
    payload = WebhookPayload.model_validate_json(text)
    splice = ReceiptSplice.of(payload)
    for link in (None, "", "https://alerts.example.org/r/abc.def", 'a"b\\c\n</script>\u2028欠薪', "null",
                 '"receipt_url":null', payload.alert.receipt_url):
        assert splice.with_link(link) == with_receipt_link(payload, link).model_dump_json(), link
