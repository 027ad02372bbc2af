"""The sweeps over bill deadlines: reminders, overdue marking, the automatic charge.

- :func:`mark_overdue` is one set-based ``UPDATE``: every open bill past its deadline becomes
  ``overdue`` at once, however many there are.
- :func:`charge_overdue` then claims overdue bills not yet charged automatically, a batch at a
  time (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so a second sweeper takes other rows; SQLite
  serialises writers), commits the claims, and only then charges each saved card off-session,
  throttled to ``HEALTH_AUTO_CHARGES_PER_SECOND``. Each bill is charged automatically once
  (its idempotency key names the bill and the attempt), however often or wherever it runs.
- :func:`resume_stalled` asks payments again, with the same key, for settlements a crash left
  without a payment.
- :func:`remind` writes the inbox reminders 24 h and 2 h before a deadline, each once.
"""

import time
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select, update

from core import db
from core.auth.models import Organisation
from core.clock import utcnow
from core.i18n import Money, _l
from core.inbox import service as inbox
from health.models import Bill, Settlement, SettlementBill
from health.service import settlements

AUTO_ATTEMPTS = 1  # the automatic charge is tried once per bill
STALLED_AFTER = timedelta(minutes=10)
REMINDERS = (("2h", timedelta(hours=2)), ("24h", timedelta(hours=24)))
_BATCH = 500


def run() -> int:
    """The ``health.bill_deadlines`` job: mark, charge a throttled batch, resume the stalled."""
    return mark_overdue() + charge_overdue() + resume_stalled()


def mark_overdue() -> int:
    """Mark every open bill past its deadline ``overdue`` in one statement; returns how many."""
    now = utcnow()
    result = db.session.execute(
        update(Bill)
        .where(Bill.status == "open", Bill.deadline <= now)
        .values(status="overdue", overdue_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


def claim_overdue(limit: int) -> list[str]:
    """Claim up to ``limit`` overdue bills for their automatic charge; returns settlement ids.

    An attempt that a crash stopped before it reached Stripe (payments reconciled it as
    ``not_submitted``) does not count: the bill is claimed again, with the next attempt's key.
    """
    never_submitted = (
        select(func.count())
        .select_from(SettlementBill)
        .join(Settlement, Settlement.id == SettlementBill.settlement_id)
        .where(
            SettlementBill.bill_id == Bill.id,
            Settlement.kind == "automatic",
            Settlement.failure_code == settlements.NOT_SUBMITTED,
        )
        .scalar_subquery()
    )
    query = (
        select(Bill)
        .where(
            Bill.status == "overdue",
            Bill.settlement_id.is_(None),
            Bill.auto_charge_attempts < AUTO_ATTEMPTS + never_submitted,
        )
        .order_by(Bill.deadline, Bill.id)
        .limit(limit)
    )
    if db.is_postgresql():
        query = query.with_for_update(skip_locked=True)
    bills = list(db.session.scalars(query))
    claimed = [settlements.claim_locked(bill, kind="automatic") for bill in bills]
    db.session.commit()
    return claimed


def charge_overdue(limit: int | None = None) -> int:
    """Charge the saved card of each claimed overdue bill, throttled; returns how many."""
    config = current_app.config
    claimed = claim_overdue(limit if limit is not None else config["HEALTH_AUTO_CHARGES_PER_RUN"])
    rate = config["HEALTH_AUTO_CHARGES_PER_SECOND"]
    interval = 1.0 / rate if rate > 0 else 0.0
    for settlement_id in claimed:
        started = time.monotonic()
        settlements.drive(settlement_id)
        spare = interval - (time.monotonic() - started)
        if spare > 0:
            time.sleep(spare)  # Stripe's rate, not ours: the marking above is not throttled
    return len(claimed)


def resume_stalled() -> int:
    """Ask payments again for settlements left pending with no payment (a crash between the
    claim and the charge); the settlement's key makes a second charge impossible."""
    cutoff = utcnow() - STALLED_AFTER
    stalled = list(
        db.session.scalars(
            select(Settlement.id)
            .where(
                Settlement.status == "pending",
                Settlement.payment_id.is_(None),
                Settlement.created_at < cutoff,
            )
            .limit(50)
        )
    )
    db.session.commit()
    for settlement_id in stalled:
        settlements.drive(settlement_id)
    return len(stalled)


def remind() -> int:
    """The ``health.bill_reminders`` job: remind of open bills 24 h and 2 h before the deadline,
    each reminder once (a bill issued with less than 24 h left gets only the 2 h one)."""
    sent = 0
    for label, ahead in REMINDERS:
        while True:
            batch = _remind_batch(label, ahead)
            sent += batch
            if batch < _BATCH:
                break
    return sent


def _remind_batch(label: str, ahead: timedelta) -> int:
    now = utcnow()
    column = Bill.reminded_2h_at if label == "2h" else Bill.reminded_24h_at
    query = (
        select(Bill)
        .where(
            Bill.status == "open",
            Bill.deadline > now,
            Bill.deadline <= now + ahead,
            column.is_(None),
        )
        .order_by(Bill.deadline)
        .limit(_BATCH)
    )
    if db.is_postgresql():
        query = query.with_for_update(skip_locked=True)
    bills = list(db.session.scalars(query))
    for bill in bills:
        bill.reminded_24h_at = bill.reminded_24h_at or now  # the 2 h one stands for both
        if label == "2h":
            bill.reminded_2h_at = now
        _notify(bill, label)
    db.session.commit()
    return len(bills)


def _notify(bill: Bill, label: str) -> None:
    hospital = db.session.get(Organisation, bill.hospital_id)
    inbox.notify(
        bill.user_id,
        f"health_bill_reminder_{label}",
        _l("Hospital bill due soon"),
        _l("Please pay %(amount)s to %(hospital)s in the app by %(deadline)s."),
        params={
            "amount": Money(bill.total, bill.currency),
            "hospital": hospital.name if hospital else "",
            "deadline": bill.deadline,
        },
        data={"bill_id": bill.id},
    )
