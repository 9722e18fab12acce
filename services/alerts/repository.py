"""Every query of the alerts service: bodies, alerts, notifications, escalations, deliveries, the consumed-event
ledger and the outbox. Functions only flush; the caller's transaction commits."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Table, bindparam, case, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts.models import Alert, Body, Delivery, DeliveryState, Escalation, Notification, ProcessedEvent
from shared.events import AlertState, RiskLevel

Row = TypeVar("Row", Notification, Escalation, Delivery)

_SEVERITY = case({level.value: level.rank for level in RiskLevel}, value=Alert.level)


# --- bodies --------------------------------------------------------------------------------------------------------


async def active_body_id_for_token(session: AsyncSession, token_hash: str) -> str | None:
    """The active body signing in with the token of this hash, or None."""
    body_id: str | None = await session.scalar(
        select(Body.id).where(Body.token_hash == token_hash, Body.active.is_(True))
    )
    return body_id


async def get_body(session: AsyncSession, body_id: str, *, for_update: bool = False) -> Body | None:
    return await session.get(Body, body_id, with_for_update=for_update)


async def list_bodies(session: AsyncSession, *, region_prefix: str | None, include_inactive: bool) -> Sequence[Body]:
    """Bodies whose region code starts with `region_prefix`, by region, kind, level and name."""
    statement = select(Body).order_by(Body.region_code, Body.kind, Body.level, Body.name)
    if region_prefix:
        statement = statement.where(Body.region_code.startswith(region_prefix))
    if not include_inactive:
        statement = statement.where(Body.active.is_(True))
    return (await session.scalars(statement)).all()


async def active_bodies_in_province(session: AsyncSession, region_code: str) -> dict[str, Body]:
    """The active bodies of the province of `region_code` (every body that could cover it), by id."""
    rows = await session.scalars(
        select(Body).where(Body.active.is_(True), Body.region_code.startswith(region_code[:2]))
    )
    return {body.id: body for body in rows}


# --- alerts --------------------------------------------------------------------------------------------------------


async def mark_processed(session: AsyncSession, event_id: str, now: datetime) -> bool:
    """Record a consumed event; False when it was recorded before (a redelivery)."""
    first_time = await session.scalar(
        insert(ProcessedEvent).values(event_id=event_id, processed_at=now)
        .on_conflict_do_nothing().returning(ProcessedEvent.event_id)
    )
    return first_time is not None


async def unresolved_alert_for_update(session: AsyncSession, credit_code: str, kind: str) -> Alert | None:
    """The one unresolved alert of (credit_code, kind), locked, or None."""
    alert: Alert | None = await session.scalar(
        select(Alert).where(Alert.credit_code == credit_code, Alert.kind == kind,
                            Alert.state != AlertState.resolved.value).with_for_update()
    )
    return alert


async def get_alert(session: AsyncSession, alert_id: str, *, for_update: bool = False) -> Alert | None:
    return await session.get(Alert, alert_id, with_for_update=for_update)


async def due_alerts_for_update(session: AsyncSession, now: datetime, limit: int) -> Sequence[Alert]:
    """Open alerts past their deadline that escalation has not given up on, oldest deadline first; rows other
    replicas hold are skipped."""
    return (await session.scalars(
        select(Alert).where(Alert.state == AlertState.open.value, Alert.escalation_exhausted.is_(False),
                            Alert.ack_deadline <= now)
        .order_by(Alert.ack_deadline).limit(limit).with_for_update(skip_locked=True)
    )).all()


async def alerts_page(session: AsyncSession, *, visible_to: str | None, state: str | None, level: str | None,
                      offset: int, limit: int) -> Sequence[Alert]:
    """Up to `limit` alerts, most severe first, then oldest first; only those `visible_to` was notified of
    (None: all)."""
    statement = select(Alert)
    if visible_to is not None:
        statement = statement.where(
            Alert.id.in_(select(Notification.alert_id).where(Notification.body_id == visible_to))
        )
    if state is not None:
        statement = statement.where(Alert.state == state)
    if level is not None:
        statement = statement.where(Alert.level == level)
    statement = statement.order_by(_SEVERITY.desc(), Alert.opened_at, Alert.id).offset(offset).limit(limit)
    return (await session.scalars(statement)).all()


async def was_notified(session: AsyncSession, alert_id: str, body_id: str) -> bool:
    found = await session.scalar(
        select(Notification.id).where(Notification.alert_id == alert_id, Notification.body_id == body_id).limit(1)
    )
    return found is not None


async def open_alerts_by_level(session: AsyncSession, *, overdue_at: datetime | None = None) -> dict[str, int]:
    """How many alerts are open (and, with `overdue_at`, past their deadline then), by level."""
    statement = select(Alert.level, func.count()).where(Alert.state == AlertState.open.value)
    if overdue_at is not None:
        statement = statement.where(Alert.ack_deadline < overdue_at)
    rows = (await session.execute(statement.group_by(Alert.level))).all()
    return {str(level): int(count) for level, count in rows}


# --- notifications, escalations, deliveries ------------------------------------------------------------------------


def add(session: AsyncSession, *rows: Any) -> None:
    """Stage new rows (alerts, notifications, escalations, deliveries, outbox messages)."""
    session.add_all(rows)


async def flush(session: AsyncSession) -> None:
    await session.flush()


async def notifications_of(session: AsyncSession, alert_ids: Sequence[str]) -> dict[str, list[Notification]]:
    """The notifications of each alert, in the order they were made: one query for the whole page."""
    rows = await session.scalars(
        select(Notification).where(Notification.alert_id.in_(alert_ids)).order_by(Notification.id)
    )
    return _by_alert(rows)


async def escalations_of(session: AsyncSession, alert_ids: Sequence[str]) -> dict[str, list[Escalation]]:
    rows = await session.scalars(
        select(Escalation).where(Escalation.alert_id.in_(alert_ids)).order_by(Escalation.id)
    )
    return _by_alert(rows)


async def deliveries_of(session: AsyncSession, alert_ids: Sequence[str]) -> dict[str, list[Delivery]]:
    rows = await session.scalars(
        select(Delivery).where(Delivery.alert_id.in_(alert_ids)).order_by(Delivery.created_at, Delivery.id)
    )
    return _by_alert(rows)


def _by_alert(rows: Iterable[Row]) -> dict[str, list[Row]]:
    grouped: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        grouped[row.alert_id].append(row)
    return grouped


async def claim_due_deliveries(session: AsyncSession, now: datetime, lease_until: datetime,
                               limit: int) -> list[Delivery]:
    """Lease up to `limit` due pending deliveries (their next attempt moves to `lease_until`); rows other replicas
    hold are skipped."""
    due = (
        select(Delivery.id).where(Delivery.state == DeliveryState.pending.value, Delivery.next_attempt_at <= now)
        .order_by(Delivery.next_attempt_at).limit(limit).with_for_update(skip_locked=True)
    )
    rows = await session.scalars(
        update(Delivery).where(Delivery.id.in_(due.scalar_subquery())).values(next_attempt_at=lease_until)
        .returning(Delivery)
    )
    return list(rows.all())


async def pending_deliveries(session: AsyncSession) -> int:
    count = await session.scalar(
        select(func.count()).select_from(Delivery).where(Delivery.state == DeliveryState.pending.value)
    )
    return count or 0


# --- sending deliveries continuously (speed: many results per transaction, wake-ups by NOTIFY) ---------------------

WAKE_CHANNEL = "alerts_work"
"""The PostgreSQL NOTIFY channel on which a commit that queued deliveries or outbox rows wakes every replica."""

_DELIVERIES: Table = Delivery.__table__  # type: ignore[assignment]  # a Table, typed as FromClause


async def bodies_by_id(session: AsyncSession, body_ids: Iterable[str]) -> dict[str, Body]:
    """The bodies of these ids (active or not), by id: one query for a whole claim."""
    ids = sorted(set(body_ids))
    if not ids:
        return {}
    return {body.id: body for body in await session.scalars(select(Body).where(Body.id.in_(ids)))}


async def record_attempts(session: AsyncSession, rows: Sequence[dict[str, Any]], *, delivered: bool) -> None:
    """Store the outcomes of many attempts in one statement (executemany). Each row: b_id, attempts,
    last_attempt_at, last_status, last_error, state, next_attempt_at, delivered_at. A delivery cancelled meanwhile
    keeps `cancelled` unless this attempt delivered it (then the receiver has it, and the row says so)."""
    if not rows:
        return
    state = _DELIVERIES.c.state
    # No IN (...): an expanding parameter cannot be used with executemany.
    still_open = or_(state == DeliveryState.pending.value, state == DeliveryState.cancelled.value) if delivered \
        else state == DeliveryState.pending.value
    statement = (
        update(_DELIVERIES).where(_DELIVERIES.c.id == bindparam("b_id"), still_open)
        .values(attempts=bindparam("b_attempts"), last_attempt_at=bindparam("b_last_attempt_at"),
                last_status=bindparam("b_last_status"), last_error=bindparam("b_last_error"),
                state=bindparam("b_state"), next_attempt_at=bindparam("b_next_attempt_at"),
                delivered_at=bindparam("b_delivered_at"))
    )
    await session.execute(statement, list(rows))


async def defer_deliveries(session: AsyncSession, delivery_ids: Sequence[str], until: datetime) -> None:
    """Put claimed deliveries back in the queue unsent (no attempt counted), due again at `until`."""
    if delivery_ids:
        await session.execute(
            update(Delivery).where(Delivery.id.in_(delivery_ids), Delivery.state == DeliveryState.pending.value)
            .values(next_attempt_at=until)
        )


async def cancel_deliveries(session: AsyncSession, delivery_ids: Sequence[str], now: datetime, reason: str) -> None:
    """Pending deliveries that must not be sent any more (their body or channel is gone) become `cancelled`."""
    if delivery_ids:
        await session.execute(
            update(Delivery).where(Delivery.id.in_(delivery_ids), Delivery.state == DeliveryState.pending.value)
            .values(state=DeliveryState.cancelled.value, last_error=reason, last_attempt_at=now)
        )


async def cancel_pending_deliveries_of_body(session: AsyncSession, body_id: str, now: datetime, reason: str) -> int:
    """Cancel every pending delivery to a body (it was deactivated); returns how many."""
    cancelled = await session.scalars(
        update(Delivery).where(Delivery.body_id == body_id, Delivery.state == DeliveryState.pending.value)
        .values(state=DeliveryState.cancelled.value, last_error=reason, last_attempt_at=now)
        .returning(Delivery.id)
    )
    return len(cancelled.all())


async def set_first_delivered_many(session: AsyncSession, alert_ids: Sequence[str],
                                   now: datetime) -> list[tuple[str, datetime, datetime]]:
    """Record the first successful delivery of these alerts; (alert id, report accepted at, alert opened at) of
    those for which this was the first."""
    if not alert_ids:
        return []
    rows = await session.execute(
        update(Alert).where(Alert.id.in_(sorted(set(alert_ids))), Alert.first_delivered_at.is_(None))
        .values(first_delivered_at=now).returning(Alert.id, Alert.first_accepted_at, Alert.opened_at)
    )
    return [(str(alert_id), accepted_at, opened_at) for alert_id, accepted_at, opened_at in rows.all()]


async def notify_work(session: AsyncSession) -> None:
    """NOTIFY the other replicas (delivered at commit, folded into one per transaction) that deliveries or outbox
    rows were queued."""
    await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": WAKE_CHANNEL})
