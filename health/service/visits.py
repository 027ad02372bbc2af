"""What hospitals post: visits (with the check-in code), charges, corrections, bills, refunds.

A hospital sees and changes only its own visits and bills (another's are 404). Every change
is audited in its own transaction. The limit check and the posting happen under a lock on the
citizen's credit line (``FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises
writers), so two hospitals posting at once cannot both take the last of a limit.
"""

from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Select, func, select

from core import db
from core.audit import service as audit
from core.auth.models import Organisation, User
from core.auth.principal import Principal
from core.clock import utcnow
from core.errors import Conflict, InvalidInput, NotFound
from core.i18n import _l
from health.errors import LimitExceeded
from health.models import Bill, BillRefund, Charge, Settlement, Visit
from health.service import checkin, lines
from payments import service as payments

# A hospital's clock may run a little ahead of ours.
CLOCK_SKEW = timedelta(minutes=5)
NOT_PAY_LATER = _l("This visit is not pay-later: the patient pays at the desk.")
NO_SUCH_VISIT = _l("No such visit.")
NO_SUCH_BILL = _l("No such bill.")


# --- views -------------------------------------------------------------------------------


def charge_view(charge: Charge) -> dict[str, Any]:
    return {
        column.key: getattr(charge, column.key)
        for column in Charge.__table__.columns
        if column.key != "visit_id"
    }


def charges_of(visit_id: str, *, active_only: bool = False) -> list[Charge]:
    query = select(Charge).where(Charge.visit_id == visit_id)
    if active_only:
        query = query.where(Charge.status == "active")
    return list(db.session.scalars(query.order_by(Charge.line)))


def bill_of(visit_id: str) -> Bill | None:
    return db.session.scalars(select(Bill).where(Bill.visit_id == visit_id)).one_or_none()


def visit_view(visit: Visit) -> dict[str, Any]:
    """A visit as its hospital sees it: eligibility, the patient's name, charges, bill."""
    bill = bill_of(visit.id)
    patient = db.session.get(User, visit.user_id)
    return {
        "id": visit.id,
        "hospital_id": visit.hospital_id,
        "patient_name": patient.name if patient else None,
        "department": visit.department,
        "visited_at": visit.visited_at,
        "status": visit.status,
        "eligible": visit.eligible,
        "reason": visit.ineligible_reason,
        "available": visit.available_at_checkin,
        "currency": visit.currency,
        "total": visit.total,
        "bill_id": bill.id if bill else None,
        "charges": [charge_view(c) for c in charges_of(visit.id)],
        "created_at": visit.created_at,
        "closed_at": visit.closed_at,
    }


def bill_view(bill: Bill) -> dict[str, Any]:
    """A bill with its items and hospital, as the citizen and the hospital see it."""
    hospital = db.session.get(Organisation, bill.hospital_id)
    return {
        "id": bill.id,
        "bill_id": bill.id,
        "visit_id": bill.visit_id,
        "hospital": {"id": bill.hospital_id, "name": hospital.name if hospital else None},
        "status": bill.status,
        "currency": bill.currency,
        "total": bill.total,
        "refunded_amount": bill.refunded_amount,
        "items": [charge_view(c) for c in charges_of(bill.visit_id, active_only=True)],
        "issued_at": bill.issued_at,
        "deadline": bill.deadline,
        "settled_at": bill.settled_at,
        "in_payment": bill.settlement_id is not None and bill.status in lines.UNPAID,
    }


# --- visits ------------------------------------------------------------------------------


def create_visit(
    hospital: Principal, checkin_code: str, department: str | None, visited_at: Any
) -> dict[str, Any]:
    """Record a visit from the patient's check-in code, deciding whether it is pay-later."""
    now = utcnow()
    if visited_at is not None and visited_at > now + CLOCK_SKEW:
        raise InvalidInput(_l("Must not be in the future."), field="visited_at")
    user_id = checkin.redeem(checkin_code)
    lines.get_line(user_id, lock=True)  # the limit is read under the line's lock
    decision = lines.eligibility(user_id)
    visit = Visit(
        hospital_id=hospital.id,
        user_id=user_id,
        department=department,
        visited_at=visited_at or now,
        status="open" if decision.eligible else "closed",
        eligible=decision.eligible,
        ineligible_reason=decision.reason,
        available_at_checkin=decision.available,
        band_version=decision.band_version,
        currency=decision.currency,
        total=0,
        created_at=now,
        closed_at=None if decision.eligible else now,
    )
    db.session.add(visit)
    db.session.flush()
    audit.record(
        hospital,
        "health.visit_posted",
        "health_visit",
        visit.id,
        after={"eligible": visit.eligible, "reason": visit.ineligible_reason},
    )
    db.session.commit()
    return visit_view(visit)


def own_visit(hospital: Principal, visit_id: str, *, lock: bool = False) -> Visit:
    """The hospital's visit (another hospital's is 404)."""
    query = select(Visit).where(Visit.id == visit_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    visit = db.session.scalars(query).one_or_none()
    if visit is None or visit.hospital_id != hospital.id:
        raise NotFound(NO_SUCH_VISIT)
    return visit


def visits_query(hospital: Principal, status: str | None) -> Select[tuple[Visit]]:
    """The hospital's visits, newest first, by status if asked."""
    query = select(Visit).where(Visit.hospital_id == hospital.id)
    if status:
        query = query.where(Visit.status == status)
    return query.order_by(Visit.visited_at.desc(), Visit.id)


def visit_detail(hospital: Principal, visit_id: str) -> dict[str, Any]:
    return visit_view(own_visit(hospital, visit_id))


def post_charges(hospital: Principal, visit_id: str, items: list[dict[str, Any]]) -> dict:
    """Add lines to an open pay-later visit; 409 with what remains when over the limit."""
    visit = own_visit(hospital, visit_id, lock=True)
    if not visit.eligible:
        raise Conflict(NOT_PAY_LATER)
    if visit.status != "open":
        raise Conflict(_l("This visit is closed; correct its bill instead."))
    amount = sum(item["quantity"] * item["unit_price"] for item in items)
    _check_limit(visit, amount)
    now = utcnow()
    lines_so_far = db.session.scalar(select(func.count()).where(Charge.visit_id == visit.id)) or 0
    for number, item in enumerate(items, start=lines_so_far + 1):
        charge = Charge(
            visit_id=visit.id,
            line=number,
            code=item["code"],
            description=item["description"],
            quantity=item["quantity"],
            unit_price=item["unit_price"],
            amount=item["quantity"] * item["unit_price"],
            posted_at=now,
        )
        db.session.add(charge)
        db.session.flush()
        audit.record(
            hospital, "health.charge_posted", "health_charge", charge.id, after=_audited(charge)
        )
    visit.total += amount
    db.session.commit()
    return visit_view(visit)


def _check_limit(visit: Visit, extra: int) -> None:
    """409 when ``extra`` more would take the patient's outstanding total over the limit."""
    if extra <= 0:
        return
    line = lines.get_line(visit.user_id, lock=True)
    if line is None or line.status == "closed":
        raise Conflict(_l("The patient has left pay-later; they pay at the desk."))
    room = lines.available(visit.user_id)
    if extra > room:
        raise LimitExceeded(
            _l("This would take the patient over their credit limit."),
            available=room,
            currency=visit.currency,
        )


def _audited(charge: Charge) -> dict[str, Any]:
    return {
        "code": charge.code,
        "description": charge.description,
        "quantity": charge.quantity,
        "unit_price": charge.unit_price,
        "amount": charge.amount,
        "status": charge.status,
        "reason": charge.change_reason,
    }


def close_visit(hospital: Principal, visit_id: str) -> dict[str, Any]:
    """Close the visit and issue its bill, due ``SETTLEMENT_WINDOW_MINUTES`` from now."""
    visit = own_visit(hospital, visit_id, lock=True)
    if not visit.eligible:
        raise Conflict(NOT_PAY_LATER)
    if visit.status != "open":
        raise Conflict(_l("This visit is closed; correct its bill instead."))
    now = utcnow()
    window = timedelta(minutes=current_app.config["SETTLEMENT_WINDOW_MINUTES"])
    bill = Bill(
        visit_id=visit.id,
        hospital_id=visit.hospital_id,
        user_id=visit.user_id,
        currency=visit.currency,
        total=visit.total,
        status="open" if visit.total > 0 else "cancelled",
        issued_at=now,
        deadline=now + window,
        refunded_amount=0,
        auto_charge_attempts=0,
        penalised=False,
    )
    visit.status, visit.closed_at = "closed", now
    db.session.add(bill)
    db.session.flush()
    audit.record(
        hospital,
        "health.bill_issued",
        "health_bill",
        bill.id,
        after={"total": bill.total, "deadline": bill.deadline.isoformat()},
    )
    db.session.commit()
    return bill_view(bill)


# --- corrections before settlement --------------------------------------------------------


def correct_charge(
    hospital: Principal, visit_id: str, charge_id: str, changes: dict[str, Any], reason: str
) -> dict[str, Any]:
    """Correct a line's quantity, unit price or description (audited, with the reason)."""
    visit, charge, bill = _correctable(hospital, visit_id, charge_id)
    before = _audited(charge)
    quantity = changes.get("quantity", charge.quantity)
    unit_price = changes.get("unit_price", charge.unit_price)
    delta = quantity * unit_price - charge.amount
    _check_limit(visit, delta)
    charge.quantity, charge.unit_price, charge.amount = quantity, unit_price, quantity * unit_price
    charge.description = changes.get("description", charge.description)
    charge.corrected_at, charge.change_reason = utcnow(), reason
    _retotal(visit, bill, delta)
    audit.record(
        hospital,
        "health.charge_corrected",
        "health_charge",
        charge.id,
        before=before,
        after=_audited(charge),
    )
    db.session.commit()
    return visit_view(visit)


def void_charge(hospital: Principal, visit_id: str, charge_id: str, reason: str) -> dict:
    """Void a line (audited, with the reason); a bill left with nothing is cancelled."""
    visit, charge, bill = _correctable(hospital, visit_id, charge_id)
    before = _audited(charge)
    charge.status, charge.voided_at, charge.change_reason = "voided", utcnow(), reason
    _retotal(visit, bill, -charge.amount)
    audit.record(
        hospital,
        "health.charge_voided",
        "health_charge",
        charge.id,
        before=before,
        after=_audited(charge),
    )
    db.session.commit()
    return visit_view(visit)


def _correctable(
    hospital: Principal, visit_id: str, charge_id: str
) -> tuple[Visit, Charge, Bill | None]:
    visit = own_visit(hospital, visit_id, lock=True)
    charge = db.session.get(Charge, charge_id)
    if charge is None or charge.visit_id != visit.id:
        raise NotFound(_l("No such charge."))
    if charge.status != "active":
        raise Conflict(_l("This charge was voided."))
    bill = bill_of(visit.id)
    if bill is not None:
        bill = db.session.scalars(select(Bill).where(Bill.id == bill.id).with_for_update()).one()
        if bill.status not in lines.UNPAID:
            raise Conflict(_l("This bill is no longer open; only a refund can change it."))
        if bill.settlement_id is not None:
            raise Conflict(_l("This bill is being paid right now; try again shortly."))
    return visit, charge, bill


def _retotal(visit: Visit, bill: Bill | None, delta: int) -> None:
    visit.total += delta
    if bill is not None:
        bill.total = visit.total
        if bill.total == 0:
            bill.status = "cancelled"


# --- bills -------------------------------------------------------------------------------


def visible_bill(principal: Principal, bill_id: str, *, lock: bool = False) -> Bill:
    """A bill its hospital or its citizen may see (anyone else's is 404)."""
    query = select(Bill).where(Bill.id == bill_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    bill = db.session.scalars(query).one_or_none()
    if bill is None or (bill.user_id if principal.is_user else bill.hospital_id) != principal.id:
        raise NotFound(NO_SUCH_BILL)
    return bill


def bill_detail(principal: Principal, bill_id: str) -> dict[str, Any]:
    return bill_view(visible_bill(principal, bill_id))


def fhir_bill(hospital: Principal, bill_id: str) -> dict[str, Any]:
    """What the FHIR Invoice is made of: the bill and its patient's id."""
    bill = visible_bill(hospital, bill_id)
    return {**bill_view(bill), "patient_id": bill.user_id}


def fhir_charge(hospital: Principal, charge_id: str) -> dict[str, Any]:
    """What the FHIR ChargeItem is made of: the line, its visit, bill and patient's id."""
    charge = db.session.get(Charge, charge_id)
    visit = db.session.get(Visit, charge.visit_id) if charge else None
    if charge is None or visit is None or visit.hospital_id != hospital.id:
        raise NotFound(_l("No such charge."))
    bill = bill_of(visit.id)
    return {
        **charge_view(charge),
        "visit_id": visit.id,
        "visit_status": visit.status,
        "patient_id": visit.user_id,
        "hospital": {"id": hospital.id, "name": hospital.name},
        "currency": visit.currency,
        "bill_id": bill.id if bill else None,
        "bill_status": bill.status if bill else None,
    }


def bills_query(user_id: str, status: str | None) -> Select[tuple[Bill]]:
    """The citizen's bills, latest deadline first, by status if asked."""
    query = select(Bill).where(Bill.user_id == user_id)
    if status:
        query = query.where(Bill.status == status)
    return query.order_by(Bill.deadline.desc(), Bill.id)


# --- refunds after settlement --------------------------------------------------------------


def refund_bill(
    hospital: Principal, bill_id: str, amount: int | None, reason: str
) -> dict[str, Any]:
    """Give money back on a settled bill through payments (all that is left when no amount)."""
    bill = visible_bill(hospital, bill_id, lock=True)
    payment_id = _paying_payment(bill)
    pending = db.session.scalars(
        select(BillRefund).where(BillRefund.bill_id == bill.id, BillRefund.status == "pending")
    ).first()
    if pending is not None:
        raise Conflict(_l("A refund of this payment is still in progress."))
    refundable = bill.total - bill.refunded_amount
    amount = refundable if amount is None else amount
    if not 0 < amount <= refundable:
        raise InvalidInput(
            _l(
                "Must be greater than %(min)s and less than or equal to %(max)s.",
                min=0,
                max=refundable,
            ),
            field="amount",
        )
    record = BillRefund(bill_id=bill.id, payment_id=payment_id, amount=amount, reason=reason)
    db.session.add(record)
    db.session.flush()
    audit.record(
        hospital,
        "health.refund_requested",
        "health_bill",
        bill.id,
        after={"refund_id": record.id, "amount": amount, "reason": reason},
    )
    db.session.commit()
    return _send_refund(hospital, record.id)


def _paying_payment(bill: Bill) -> str:
    settlement = db.session.get(Settlement, bill.settlement_id) if bill.settlement_id else None
    if bill.status != "settled" or settlement is None or settlement.payment_id is None:
        raise Conflict(_l("Only a settled bill can be refunded."))
    return settlement.payment_id


def _send_refund(hospital: Principal, record_id: str) -> dict[str, Any]:
    record = db.session.get(BillRefund, record_id)
    assert record is not None
    try:
        refund = payments.refund(record.payment_id, record.amount, record.reason, hospital)
    except Exception:
        db.session.rollback()
        _mark_refund(record_id, "failed")
        raise
    record = db.session.get(BillRefund, record_id)
    assert record is not None
    if record.payment_refund_id is None:
        record.payment_refund_id = refund.id
    db.session.commit()
    if refund.status in ("succeeded", "failed"):
        apply_refund_outcome(refund.id, record.payment_id, refund.status)
        db.session.commit()
    return refund_view(db.session.get(BillRefund, record_id))  # type: ignore[arg-type]


def _mark_refund(record_id: str, status: str) -> None:
    record = db.session.get(BillRefund, record_id)
    if record is not None and record.status == "pending":
        record.status = status
        db.session.commit()


def refund_view(record: BillRefund) -> dict[str, Any]:
    return {
        "id": record.id,
        "bill_id": record.bill_id,
        "amount": record.amount,
        "reason": record.reason,
        "status": record.status,
        "payment_refund_id": record.payment_refund_id,
        "created_at": record.created_at,
    }


def apply_refund_outcome(refund_id: str, payment_id: str, status: str) -> None:
    """Move a bill refund to what payments reports (idempotent; the caller commits)."""
    record = db.session.scalars(
        select(BillRefund).where(BillRefund.payment_refund_id == refund_id).with_for_update()
    ).one_or_none()
    if record is None:  # the outcome arrived before we stored the refund's id
        record = db.session.scalars(
            select(BillRefund)
            .where(
                BillRefund.payment_id == payment_id,
                BillRefund.payment_refund_id.is_(None),
                BillRefund.status == "pending",
            )
            .with_for_update()
        ).first()
        if record is None:
            return
        record.payment_refund_id = refund_id
    bill = db.session.scalars(select(Bill).where(Bill.id == record.bill_id).with_for_update()).one()
    if status == "succeeded" and record.status == "pending":
        record.status = "succeeded"
        bill.refunded_amount += record.amount
        if bill.refunded_amount >= bill.total:
            bill.status = "refunded"
    elif status == "failed" and record.status != "failed":
        if record.status == "succeeded":  # failed at the bank after succeeding: undo
            bill.refunded_amount -= record.amount
            if bill.status == "refunded":
                bill.status = "settled"
        record.status = "failed"
