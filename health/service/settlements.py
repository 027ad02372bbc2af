"""Settling bills: one payment for all the chosen bills, authorised by the citizen's face, or
the automatic off-session charge at the deadline; and what payments later reports.

A settlement first *claims* its bills (``bills.settlement_id``, taken under row locks and only
from bills nobody holds) and commits; only then is payments called, with an idempotency key
from the settlement (``health-settlement-<id>``, or ``health-bill-<id>-attempt-<n>`` for the
automatic charge). So two requests, a request and the sweep, or two sweeps can never charge a
bill twice. The outcome is applied once, whether it comes back from the call or later through
payments' outbox (:func:`on_payment_succeeded`, :func:`on_payment_failed`).
"""

import logging
from typing import Any

from flask import current_app
from sqlalchemy import select

from civic.service import credit
from core import db
from core.auth.models import Organisation
from core.clock import utcnow
from core.errors import Conflict, DomainError, InvalidInput, NotFound
from core.i18n import Money, _l
from core.ids import new_id
from core.inbox import service as inbox
from health.errors import PaymentDeclined
from health.models import Bill, Settlement, SettlementBill
from health.service import face, lines
from health.service.visits import NO_SUCH_BILL, apply_refund_outcome
from payments import service as payments
from payments.signals import PaymentOutcome

log = logging.getLogger("civic.health")

PURPOSE = "health_settlement"
PENALTY_REASON = "hospital_bill_overdue"
RESTORATION_REASON = "hospital_bill_paid"
NOTHING_TO_SETTLE = _l("There is nothing to settle.")
REFUSED = "refused"  # payments refused before Stripe (no saved card...): not a decline
# payments' reconciliation found that a crash stopped the charge before it reached Stripe: the
# citizen was never asked for the money, so it is neither a decline nor the bill's attempt.
NOT_SUBMITTED = "not_submitted"


# --- by face -----------------------------------------------------------------------------


def settle_by_face(
    user_id: str, image: bytes, bill_ids: list[str] | None
) -> tuple[dict[str, Any], int]:
    """Verify the face, then take one payment for the chosen bills (all unpaid when none).

    Returns the settlement and the HTTP status: 201 paid, 202 waiting (3-D Secure: with the
    client secret; or Stripe unreachable). Raises 402 declined, 403/422/423 for the face.
    """
    chosen = _payable(user_id, bill_ids)
    face.verify(user_id, image)
    settlement_id = claim(user_id, [bill.id for bill in chosen], kind="face")
    settlement = drive(settlement_id)
    if settlement.status == "failed" and settlement.failure_code == REFUSED:
        raise PaymentDeclined(  # payments' own reason, already in the reader's language
            settlement.failure_message or "",
            settlement_id=settlement.id,
            decline_code=None,
            error="payment_refused",
        )
    if settlement.status == "failed":
        raise PaymentDeclined(
            _l("Your card was declined; the bills are still open."),
            settlement_id=settlement.id,
            decline_code=settlement.failure_code,
        )
    view = settlement_view(settlement)
    if settlement.status == "requires_action":
        view["client_secret"] = client_secret(settlement.payment_id)
    return view, 201 if settlement.status == "succeeded" else 202


def _payable(user_id: str, bill_ids: list[str] | None) -> list[Bill]:
    """The bills to pay: the named ones (each the citizen's own and unpaid), else all unpaid."""
    query = select(Bill).where(Bill.user_id == user_id)
    if bill_ids:
        found = {b.id: b for b in db.session.scalars(query.where(Bill.id.in_(bill_ids)))}
        if set(bill_ids) - set(found):
            raise NotFound(NO_SUCH_BILL)
        if any(b.status not in lines.UNPAID for b in found.values()):
            raise Conflict(_l("A chosen bill is not open any more."), field="bill_ids")
        chosen = list(found.values())
    else:
        chosen = list(db.session.scalars(query.where(Bill.status.in_(lines.UNPAID))))
    if not chosen:
        raise Conflict(NOTHING_TO_SETTLE)
    if any(b.settlement_id is not None for b in chosen):
        raise Conflict(_l("A payment of these bills is already in progress."))
    if len({b.currency for b in chosen}) > 1:
        raise InvalidInput(
            _l("Bills in different currencies are paid separately."), field="bill_ids"
        )
    return chosen


def settlement_detail(user_id: str, settlement_id: str) -> dict[str, Any]:
    """One of the citizen's settlements (another's is 404)."""
    settlement = db.session.get(Settlement, settlement_id)
    if settlement is None or settlement.user_id != user_id:
        raise NotFound(_l("No such settlement."))
    return settlement_view(settlement)


def settlement_view(settlement: Settlement) -> dict[str, Any]:
    bill_ids = db.session.scalars(
        select(SettlementBill.bill_id).where(SettlementBill.settlement_id == settlement.id)
    )
    return {
        "id": settlement.id,
        "kind": settlement.kind,
        "status": settlement.status,
        "amount": settlement.amount,
        "currency": settlement.currency,
        "bill_ids": sorted(bill_ids),
        "payment_id": settlement.payment_id,
        "failure_code": settlement.failure_code,
        "created_at": settlement.created_at,
        "finished_at": settlement.finished_at,
    }


def client_secret(payment_id: str | None) -> str | None:
    """The client secret of the payment's PaymentIntent, for the app to finish 3-D Secure."""
    return payments.client_secret(payment_id) if payment_id else None


# --- claiming and charging ---------------------------------------------------------------


def claim(user_id: str, bill_ids: list[str], *, kind: str) -> str:
    """Take hold of the bills for a new settlement and commit; 409 if one is taken meanwhile."""
    bills = list(
        db.session.scalars(
            select(Bill).where(Bill.id.in_(bill_ids)).with_for_update().order_by(Bill.id)
        )
    )
    if len(bills) != len(bill_ids) or any(
        b.settlement_id is not None or b.status not in lines.UNPAID for b in bills
    ):
        db.session.rollback()
        raise Conflict(_l("A payment of these bills is already in progress."))
    settlement_id = _attach(user_id, bills, kind)
    db.session.commit()
    return settlement_id


def claim_locked(bill: Bill, *, kind: str) -> str:
    """Claim one bill the caller has locked and checked, in the caller's transaction."""
    return _attach(bill.user_id, [bill], kind)


def _attach(user_id: str, bills: list[Bill], kind: str) -> str:
    settlement_id = new_id()
    db.session.add(_new_settlement(settlement_id, user_id, bills, kind))
    db.session.flush()
    for bill in bills:
        bill.settlement_id = settlement_id
        db.session.add(SettlementBill(settlement_id=settlement_id, bill_id=bill.id))
    return settlement_id


def _new_settlement(settlement_id: str, user_id: str, bills: list[Bill], kind: str) -> Settlement:
    if kind == "automatic":
        (bill,) = bills
        bill.auto_charge_attempts += 1
        key = f"health-bill-{bill.id}-attempt-{bill.auto_charge_attempts}"
    else:
        key = f"health-settlement-{settlement_id}"
    return Settlement(
        id=settlement_id,
        user_id=user_id,
        kind=kind,
        status="pending",
        amount=sum(b.total for b in bills),
        currency=bills[0].currency,
        idempotency_key=key,
        created_at=utcnow(),
    )


def drive(settlement_id: str) -> Settlement:
    """Ask payments for the settlement's payment (again: the key makes it once) and apply what
    it answers. A refusal before Stripe (no saved card...) fails the settlement."""
    settlement = _get(settlement_id)
    db.session.commit()  # payments must find no transaction of ours open
    try:
        payment = payments.charge(
            settlement.user_id,
            settlement.amount,
            settlement.currency,
            PURPOSE,
            settlement.id,
            off_session=settlement.kind == "automatic",
            idempotency_key=settlement.idempotency_key,
        )
    except DomainError as refused:
        db.session.rollback()
        apply_failure(settlement_id, None, REFUSED, refused.message)
        db.session.commit()
        return _get(settlement_id)
    _record_payment(settlement_id, payment.id, payment.status)
    if payment.status == "succeeded":
        apply_success(settlement_id, payment.id)
    elif payment.status in ("failed", "canceled"):
        apply_failure(settlement_id, payment.id, payment.failure_code, payment.failure_message)
    db.session.commit()
    return _get(settlement_id)


def _get(settlement_id: str) -> Settlement:
    settlement = db.session.get(Settlement, settlement_id, populate_existing=True)
    assert settlement is not None
    return settlement


def _lock(settlement_id: str) -> Settlement | None:
    return db.session.scalars(
        select(Settlement)
        .where(Settlement.id == settlement_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()


def _record_payment(settlement_id: str, payment_id: str, status: str) -> None:
    settlement = _lock(settlement_id)
    assert settlement is not None
    settlement.payment_id = settlement.payment_id or payment_id
    if status == "requires_action" and settlement.status == "pending":
        settlement.status = "requires_action"


# --- outcomes ----------------------------------------------------------------------------


def on_payment_succeeded(outcome: PaymentOutcome) -> None:
    """payments' ``payment_succeeded`` for a settlement (idempotent)."""
    apply_success(outcome.reference, outcome.payment_id)


def on_payment_failed(outcome: PaymentOutcome) -> None:
    """payments' ``payment_failed`` for a settlement (idempotent)."""
    apply_failure(
        outcome.reference, outcome.payment_id, outcome.failure_code, outcome.failure_message
    )


def on_refund_succeeded(outcome: PaymentOutcome) -> None:
    """payments' ``refund_succeeded`` for a settlement's payment (idempotent)."""
    if outcome.refund_id is not None:
        apply_refund_outcome(outcome.refund_id, outcome.payment_id, "succeeded")


def on_refund_failed(outcome: PaymentOutcome) -> None:
    """payments' ``refund_failed`` for a settlement's payment (idempotent)."""
    if outcome.refund_id is not None:
        apply_refund_outcome(outcome.refund_id, outcome.payment_id, "failed")


def apply_success(settlement_id: str, payment_id: str | None) -> None:
    """Settle the settlement's bills, restore the score for any penalised one, lift the
    suspension when nothing is overdue any more, tell the citizen. The caller commits."""
    settlement = _lock(settlement_id)
    if settlement is None or settlement.status == "succeeded":
        return
    now = utcnow()
    settlement.status, settlement.finished_at = "succeeded", now
    settlement.payment_id = settlement.payment_id or payment_id
    for bill in _bills_of(settlement):
        if bill.status not in lines.UNPAID or bill.settlement_id not in (None, settlement.id):
            continue
        bill.status, bill.settled_at, bill.settlement_id = "settled", now, settlement.id
        if bill.penalised:
            _score(bill, +current_app.config["HEALTH_OVERDUE_PENALTY"], RESTORATION_REASON)
    lines.lift_suspension_if_clear(settlement.user_id)
    inbox.notify(
        settlement.user_id,
        "health_bills_settled",
        _l("Hospital bills paid"),
        _l("You paid %(amount)s for your hospital bills."),
        params={"amount": Money(settlement.amount, settlement.currency)},
        data={"settlement_id": settlement.id},
    )


def apply_failure(
    settlement_id: str, payment_id: str | None, code: str | None, message: str | None
) -> None:
    """Let go of the bills; after a failed automatic charge also suspend the line, post the
    penalty once per bill and tell the citizen. The caller commits."""
    settlement = _lock(settlement_id)
    if settlement is None or settlement.status in ("succeeded", "failed"):
        return
    settlement.status, settlement.finished_at = "failed", utcnow()
    settlement.payment_id = settlement.payment_id or payment_id
    settlement.failure_code = (code or "payment_failed")[:64]
    settlement.failure_message = message
    held = [b for b in _bills_of(settlement) if b.settlement_id == settlement.id]
    for bill in held:
        bill.settlement_id = None
    # A charge that never reached Stripe is no decline: no penalty, and the next sweep charges
    # the bill again (deadlines.claim_overdue does not count this attempt).
    if settlement.kind == "automatic" and settlement.failure_code != NOT_SUBMITTED:
        _after_failed_automatic_charge(settlement, held)


def _after_failed_automatic_charge(settlement: Settlement, bills: list[Bill]) -> None:
    lines.suspend(settlement.user_id)
    for bill in bills:
        if bill.status != "overdue" or bill.penalised:
            continue
        bill.penalised = True
        _score(bill, -current_app.config["HEALTH_OVERDUE_PENALTY"], PENALTY_REASON)
        inbox.notify(
            bill.user_id,
            "health_bill_overdue",
            _l("Hospital bill overdue"),
            _l(
                "We could not charge %(amount)s to your saved card. Your pay-later credit "
                "line is suspended until you pay the bill in the app."
            ),
            params={"amount": Money(bill.total, bill.currency)},
            data={"bill_id": bill.id},
        )


def _bills_of(settlement: Settlement) -> list[Bill]:
    linked = select(SettlementBill.bill_id).where(SettlementBill.settlement_id == settlement.id)
    query = select(Bill).where(Bill.id.in_(linked)).with_for_update()
    return list(db.session.scalars(query.execution_options(populate_existing=True)))


def _score(bill: Bill, delta: int, reason: str) -> None:
    """Ask civic to move the score, once per bill and reason, in our transaction."""
    if delta == 0:
        return
    hospital = db.session.get(Organisation, bill.hospital_id)
    credit.request_event(
        bill.user_id,
        delta,
        reason,
        hospital.name if hospital else "hospital",
        evidence=f"health_bill:{bill.id}",
        key=f"health-bill-{bill.id}-{reason}",
    )
