"""Reservations: hold a space, pay at once, then let the sensor drive the rest.

- **No double booking.** On PostgreSQL the exclusion constraint refuses an overlapping blocking
  reservation of the same space (a conflict is 409); on SQLite the overlap check and the insert
  run in one transaction, and every SQLite transaction is ``BEGIN IMMEDIATE``, so two requests
  cannot both pass the check.
- **Payment.** The hold is committed first (payments refuses to run with our uncommitted
  writes), then charged with ``idempotency_key=reservation-<id>-attempt-<n>``. The outcome comes
  back through ``payments.signals`` (and directly from ``charge``); both paths are idempotent.
- **Retries after a crash.** Under an ``Idempotency-Key`` the reservation's id is derived from
  the citizen and the key, so a retry that takes over the key of a request whose worker died
  (``core.idempotency``) finds the hold that request made and carries it on with the same
  payment attempt, instead of holding and charging a second space. A cancellation repeated after
  a crash finishes its refund (keyed by the reservation, so never twice) before its 409.
- **Sensor-driven lifecycle** (the ``parking.reservations`` sweep): arrival → ``active``, no arrival
  within the grace period → ``no_show``, free again → ``completed`` (an overstay past the end plus
  the grace period is charged off-session), a space taken by someone else at the start → moved to
  another free space of the lot, or refunded in full.
"""

import contextlib
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Select, case, func, select, update
from sqlalchemy.exc import IntegrityError

import payments.service as payments
from core import db
from core.auth.principal import Principal
from core.clock import utcnow
from core.errors import Conflict, DomainError, InvalidInput, NotFound
from core.i18n import Money, _l
from core.ids import new_id
from core.inbox import service as inbox
from parking.errors import ReservationConflict, RuleBroken
from parking.events import as_utc
from parking.models import (
    BLOCKING_STATUSES,
    ParkingLot,
    ParkingSensor,
    ParkingSpace,
    ParkingTariff,
    Reservation,
)
from parking.service.availability import offline_cutoff, reserved_between, status_of
from parking.service.pricing import quote
from payments.signals import PaymentOutcome

log = logging.getLogger("civic.parking.reservations")
PURPOSE = "parking_reservation"
OVERSTAY_PURPOSE = "parking_overstay"
MIN_DURATION = timedelta(minutes=15)
MAX_DURATION = timedelta(hours=24)
MAX_LEAD = timedelta(days=7)
PAST_TOLERANCE = timedelta(minutes=1)
MAX_OPEN = 2
CANCELED = "reservation canceled"
REFUND_ATTEMPTS = 3  # per reason; a refund fails after a crash before Stripe, or when refused
EXCLUSION_VIOLATION = "23P01"


def _minutes(setting: str) -> timedelta:
    return timedelta(minutes=current_app.config[setting])


# --- reserving -----------------------------------------------------------------------------


_KEYED = uuid.UUID("8c5e7c8e-2f4b-4a57-9d0e-6f1f3b0c7a11")  # namespace of key-derived ids


def reserve(
    citizen: Principal, data: dict[str, Any], request_key: str | None = None
) -> tuple[Reservation, Any]:
    """Hold a space for the window and charge the quote at once; returns the reservation and
    the payment (None when the stay is free). ``request_key`` is the request's
    ``Idempotency-Key``: the same key carries on the hold an earlier run of it made."""
    reservation_id = (
        str(uuid.uuid5(_KEYED, f"{citizen.id}\0{request_key}")) if request_key else None
    )
    if reservation_id is not None:
        earlier = db.session.get(Reservation, reservation_id)
        if earlier is not None and earlier.user_id == citizen.id:
            return earlier, _carry_on(earlier, data.get("payment_method"))
    starts_at, ends_at = as_utc(data["starts_at"]), as_utc(data["ends_at"])
    _check_rules(citizen.id, starts_at, ends_at)
    method = data.get("payment_method")
    if not method and not payments.list_cards(citizen.id):
        raise InvalidInput(_l("No saved card; save one first."), field="payment_method")
    reservation = _hold(citizen.id, data, starts_at, ends_at, reservation_id)
    if reservation.quote_amount == 0:
        return reservation, None
    try:
        return reservation, _charge(reservation, method)
    except DomainError:
        _close(reservation.id, "expired", "payment_refused")
        raise


def _carry_on(reservation: Reservation, payment_method: str | None) -> Any:
    """The payment of a hold an earlier run of the same request made (its worker died): ask
    payments again with that run's attempt key (the same charge, never a second one), or make
    the first attempt if the run died before it."""
    if reservation.quote_amount == 0:
        return None
    if reservation.payment_attempts == 0 and reservation.status == "held":
        return _charge(reservation, payment_method)
    if reservation.payment_attempts == 0:
        return None
    return _ask_payments(reservation, payment_method, reservation.payment_attempts)


def _check_rules(user_id: str, starts_at: datetime, ends_at: datetime) -> None:
    now = utcnow()
    if not MIN_DURATION <= ends_at - starts_at <= MAX_DURATION:
        raise RuleBroken(
            _l("A reservation lasts from 15 minutes to 24 hours."), rule="duration", field="ends_at"
        )
    if starts_at < now - PAST_TOLERANCE:
        raise RuleBroken(
            _l("A reservation cannot start in the past."), rule="not_in_past", field="starts_at"
        )
    if starts_at > now + MAX_LEAD:
        raise RuleBroken(
            _l("A reservation must start within 7 days."), rule="within_7_days", field="starts_at"
        )
    open_count = db.session.scalar(
        select(func.count()).where(
            Reservation.user_id == user_id, Reservation.status.in_(BLOCKING_STATUSES)
        )
    )
    if (open_count or 0) >= MAX_OPEN:
        raise RuleBroken(
            _l("You may have at most 2 open reservations."), rule="max_open_reservations"
        )


def _hold(
    user_id: str,
    data: dict[str, Any],
    starts_at: datetime,
    ends_at: datetime,
    reservation_id: str | None = None,
) -> Reservation:
    """Insert the held reservation (with ``reservation_id`` when given) and commit; 409 when
    the space is taken for the window."""
    lot, candidates = _candidates(data, starts_at, ends_at)
    tariff = db.session.get(ParkingTariff, lot.id)
    if tariff is None:
        raise InvalidInput(_l("This lot has no tariff yet."), field="lot_id")
    for space_id in candidates:
        reservation = Reservation(
            id=reservation_id or new_id(),
            user_id=user_id,
            lot_id=lot.id,
            space_id=space_id,
            starts_at=starts_at,
            ends_at=ends_at,
            vehicle_plate=data["vehicle_plate"].strip().upper(),
            quote_amount=quote(tariff, starts_at, ends_at),
            currency=tariff.currency,
            payment_attempts=0,
        )
        if reservation.quote_amount == 0:
            reservation.status, reservation.payment_status = "confirmed", "free"
        if _insert_unless_overlapping(reservation):
            db.session.commit()
            return reservation
    raise ReservationConflict()


def _candidates(
    data: dict[str, Any], starts_at: datetime, ends_at: datetime
) -> tuple[ParkingLot, list[str]]:
    """The lot and the space ids to try: the one asked for, or the lot's free ones."""
    if data.get("space_id"):
        space = db.session.get(ParkingSpace, data["space_id"])
        if space is None:
            raise NotFound(_l("No such parking space."))
        if space.closed:
            raise InvalidInput(_l("This space is closed."), field="space_id")
        lot = db.session.get(ParkingLot, space.lot_id)
        assert lot is not None
        return lot, [space.id]
    lot = db.session.get(ParkingLot, data.get("lot_id") or "")
    if lot is None:
        raise NotFound(_l("No such parking lot."))
    free_first = case((status_of(utcnow()) == "free", 0), else_=1)
    ids = db.session.scalars(
        select(ParkingSpace.id)
        .outerjoin(ParkingSensor, ParkingSensor.space_id == ParkingSpace.id)
        .where(
            ParkingSpace.lot_id == lot.id,
            ParkingSpace.closed.is_(False),
            ParkingSpace.kind == "car",
            ParkingSpace.id.not_in(reserved_between(starts_at, ends_at)),
        )
        .order_by(free_first, ParkingSpace.code)
        .limit(5)
    ).all()
    if not ids:
        raise ReservationConflict(_l("No space of this lot is free for that time."))
    return lot, list(ids)


def _insert_unless_overlapping(reservation: Reservation) -> bool:
    """Check and insert in the open transaction; False when another blocking reservation of the
    space overlaps (found by the check, or by PostgreSQL's exclusion constraint under a race)."""
    clash = db.session.scalar(
        select(Reservation.id)
        .where(
            Reservation.space_id == reservation.space_id,
            Reservation.status.in_(BLOCKING_STATUSES),
            Reservation.starts_at < reservation.ends_at,
            Reservation.ends_at > reservation.starts_at,
        )
        .limit(1)
    )
    if clash is not None:
        return False
    try:
        with db.session.begin_nested():
            db.session.add(reservation)
    except IntegrityError as error:
        if getattr(error.orig, "sqlstate", None) != EXCLUSION_VIOLATION:
            raise
        return False
    return True


def _charge(reservation: Reservation, payment_method: str | None) -> Any:
    """One more payment attempt for a held reservation (our work committed before payments)."""
    reservation.payment_attempts += 1
    reservation.payment_status, reservation.updated_at = "pending", utcnow()
    return _ask_payments(reservation, payment_method, reservation.payment_attempts)


def _ask_payments(reservation: Reservation, payment_method: str | None, attempt: int) -> Any:
    """Commit our work, then charge attempt ``attempt`` (its key makes a repeat the same charge)."""
    db.session.commit()
    payment = payments.charge(
        reservation.user_id,
        reservation.quote_amount,
        reservation.currency,
        PURPOSE,
        reservation.id,
        payment_method=payment_method,
        idempotency_key=f"reservation-{reservation.id}-attempt-{attempt}",
    )
    _record_payment(reservation.id, payment)
    return payment


def _record_payment(reservation_id: str, payment: Any) -> None:
    """What ``charge`` answered (the signal handler may already have confirmed it)."""
    reservation = _reload(reservation_id)
    if payment.status == "succeeded":
        _confirm(reservation, payment.id, payment.amount)
    elif reservation.status == "held" and reservation.payment_id is None:
        reservation.payment_status = payment.status
        reservation.payment_failure = payment.failure_message
    reservation.updated_at = utcnow()
    db.session.commit()


def _reload(reservation_id: str) -> Reservation:
    db.session.expire_all()
    reservation = db.session.get(Reservation, reservation_id)
    assert reservation is not None
    return reservation


def _confirm(reservation: Reservation, payment_id: str, amount: int) -> bool:
    """held → confirmed with this payment; False if the reservation was not waiting for it."""
    if reservation.status == "held":
        reservation.status, reservation.payment_id = "confirmed", payment_id
        reservation.amount_paid, reservation.payment_status = amount, "succeeded"
        reservation.payment_failure = None
        return True
    return reservation.payment_id == payment_id


def pay(
    citizen: Principal, reservation_id: str, payment_method: str | None
) -> tuple[Reservation, Any]:
    """Retry the payment of a held reservation (after a decline, or with another card)."""
    reservation = own_reservation(citizen, reservation_id)
    if reservation.status != "held":
        raise Conflict(_l("This reservation is not waiting for payment."))
    if reservation.created_at + _minutes("PARKING_HOLD_MINUTES") <= utcnow():
        _close(reservation.id, "expired", "hold_expired")
        raise Conflict(_l("This hold has expired; reserve again."))
    if not payment_method and not payments.list_cards(citizen.id):
        raise InvalidInput(_l("No saved card; save one first."), field="payment_method")
    return reservation, _charge(reservation, payment_method)


def cancel(citizen: Principal, reservation_id: str) -> Reservation:
    """Cancel: free until ``PARKING_FREE_CANCEL_MINUTES`` before the start, then the late fee;
    the rest of what was paid is refunded through payments."""
    reservation = own_reservation(citizen, reservation_id)
    if (reservation.status, reservation.closed_reason) == ("canceled", "canceled_by_citizen"):
        # Canceled already; a crash may have come between the cancel and its refund (this is
        # its retry): make sure the refund was made, once, before saying so.
        _refund(reservation.id, reservation.amount_paid - reservation.fee_amount, CANCELED)
    if reservation.status not in ("held", "confirmed"):
        raise Conflict(_l("This reservation can no longer be canceled."))
    fee = 0
    late = utcnow() > reservation.starts_at - _minutes("PARKING_FREE_CANCEL_MINUTES")
    if reservation.status == "confirmed" and late:
        fee = _percent(reservation.amount_paid, "PARKING_LATE_CANCEL_FEE_PERCENT")
    _close(reservation.id, "canceled", "canceled_by_citizen", fee=fee)
    _refund(reservation.id, reservation.amount_paid - fee, CANCELED)
    return _reload(reservation.id)


def _percent(amount: int, setting: str) -> int:
    return amount * int(current_app.config[setting]) // 100


def _close(reservation_id: str, status: str, reason: str, fee: int = 0) -> None:
    reservation = _reload(reservation_id)
    reservation.status, reservation.closed_reason = status, reason
    reservation.fee_amount, reservation.updated_at = fee, utcnow()
    db.session.commit()


def _refund(reservation_id: str, amount: int, reason: str, attempt: int = 1) -> None:
    """Give back ``amount`` of the reservation's payment (committed state only), once per
    reservation, reason and attempt (the key makes a repeated call return the first refund)."""
    reservation = _reload(reservation_id)
    if amount <= 0 or reservation.payment_id is None:
        return
    db.session.commit()
    key = f"reservation-{reservation_id}-refund-{reason}"
    if attempt > 1:
        key = f"{key}-attempt-{attempt}"
    try:
        payments.refund(reservation.payment_id, amount, reason, idempotency_key=key)
    except DomainError as error:  # already refunded (a repeated sweep) or one in progress
        log.warning(
            "refund not made", extra={"reservation": reservation_id, "why": str(error.message)}
        )


# --- reading -------------------------------------------------------------------------------


def own_reservation(citizen: Principal, reservation_id: str) -> Reservation:
    """The citizen's own reservation; another's is 404."""
    reservation = db.session.get(Reservation, reservation_id)
    if reservation is None or reservation.user_id != citizen.id:
        raise NotFound(_l("No such reservation."))
    return reservation


def citizen_reservations(citizen: Principal) -> Select[tuple[Reservation]]:
    return (
        select(Reservation)
        .where(Reservation.user_id == citizen.id)
        .order_by(Reservation.starts_at.desc(), Reservation.id)
    )


def lot_reservations(operator: Principal, lot_id: str) -> Select[tuple[Reservation]]:
    lot = db.session.get(ParkingLot, lot_id)
    if lot is None or lot.operator_id != operator.id:
        raise NotFound(_l("No such parking lot."))
    return (
        select(Reservation)
        .where(Reservation.lot_id == lot_id)
        .order_by(Reservation.starts_at.desc(), Reservation.id)
    )


# --- payment outcomes (payments.signals; each idempotent) -----------------------------------


def on_payment_succeeded(outcome: PaymentOutcome) -> None:
    """Confirm the held reservation; a payment that arrives for one no longer held (expired,
    canceled, or already paid by another attempt) is refunded in full."""
    reservation = db.session.get(Reservation, outcome.reference)
    if reservation is None:
        return
    if _confirm(reservation, outcome.payment_id, outcome.amount):
        reservation.updated_at = utcnow()
        db.session.commit()
        return
    db.session.commit()
    with contextlib.suppress(DomainError):  # refunded already (this outcome delivered twice)
        payments.refund(outcome.payment_id, None, "reservation no longer held")


def on_payment_failed(outcome: PaymentOutcome) -> None:
    reservation = db.session.get(Reservation, outcome.reference)
    if reservation is not None and reservation.status == "held" and reservation.payment_id is None:
        reservation.payment_status = "failed"
        reservation.payment_failure = (outcome.failure_message or "")[:255] or None
        reservation.updated_at = utcnow()


def on_refund_succeeded(outcome: PaymentOutcome) -> None:
    """Keep ``amount_paid`` equal to the ledger's net balance (idempotent)."""
    reservation = db.session.get(Reservation, outcome.reference)
    if reservation is not None:
        reservation.amount_paid = sum(payments.balance(PURPOSE, reservation.id).values())


def on_refund_failed(outcome: PaymentOutcome) -> None:
    """Ask again for a refund that failed, with the next attempt's key, up to
    ``REFUND_ATTEMPTS`` per reason: payments fails a refund a crash stopped before Stripe
    (nobody else would ask again, and the citizen's money would stay with us)."""
    reservation = db.session.get(Reservation, outcome.reference)
    if reservation is None or outcome.refund_id is None or not outcome.refunded_amount:
        return
    refunds = payments.refunds_of(outcome.payment_id)
    failed = next((r for r in refunds if r.id == outcome.refund_id), None)
    if failed is None or failed.status != "failed":
        return
    attempts = sum(1 for r in refunds if r.reason == failed.reason)
    if attempts >= REFUND_ATTEMPTS:
        log.error("refund failed for good", extra={"reservation": reservation.id})
        return
    db.session.commit()
    _refund(reservation.id, outcome.refunded_amount, failed.reason, attempt=attempts + 1)


def on_overstay_paid(outcome: PaymentOutcome) -> None:
    reservation = db.session.get(Reservation, outcome.reference)
    if reservation is not None:
        reservation.overstay_paid = outcome.amount


# --- the sensor-driven lifecycle (the parking.reservations sweep) ---------------------------


def sweep() -> int:
    """Move every due reservation along; returns how many changed. Idempotent."""
    return (
        expire_holds()
        + _each(_due_reminders(), _remind)
        + _each(_arrivals(), _arrive)
        + _each(_taken_at_start(), _move_or_refund)
        + _each(_no_shows(), _no_show)
        + _each(_departures(), _depart)
        + _each(_unbilled_overstays(), _bill_overstay)
    )


def expire_holds() -> int:
    """Unpaid holds older than ``PARKING_HOLD_MINUTES`` expire and free their space."""
    result = db.session.execute(
        update(Reservation)
        .where(
            Reservation.status == "held",
            Reservation.created_at <= utcnow() - _minutes("PARKING_HOLD_MINUTES"),
        )
        .values(status="expired", closed_reason="hold_expired", updated_at=utcnow())
    )
    db.session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


def _each(ids: list[str], step: Any) -> int:
    db.session.commit()
    done = 0
    for reservation_id in ids:
        reservation = _lock(reservation_id)
        if reservation is not None and step(reservation):
            done += 1
        db.session.commit()
    return done


def _lock(reservation_id: str) -> Reservation | None:
    """The row, locked (another sweeper's row is skipped on PostgreSQL)."""
    db.session.expire_all()
    query = select(Reservation).where(Reservation.id == reservation_id)
    if db.is_postgresql():
        query = query.with_for_update(skip_locked=True)
    return db.session.scalars(query).one_or_none()


def _with_sensor(*conditions: Any) -> list[str]:
    query = (
        select(Reservation.id)
        .join(ParkingSensor, ParkingSensor.space_id == Reservation.space_id)
        .where(*conditions)
        .order_by(Reservation.starts_at)
        .limit(500)
    )
    return list(db.session.scalars(query))


def _due_reminders() -> list[str]:
    now = utcnow()
    query = select(Reservation.id).where(
        Reservation.status == "confirmed",
        Reservation.reminded_at.is_(None),
        Reservation.starts_at > now,
        Reservation.starts_at <= now + _minutes("PARKING_REMINDER_MINUTES"),
    )
    return list(db.session.scalars(query.limit(500)))


def _remind(reservation: Reservation) -> bool:
    if reservation.status != "confirmed" or reservation.reminded_at is not None:
        return False
    reservation.reminded_at = utcnow()
    _tell(
        reservation,
        "parking_reminder",
        _l("Parking reminder"),
        _l("Your parking reservation at %(lot)s starts at %(when)s."),
        when=reservation.starts_at,
    )
    return True


def _arrivals() -> list[str]:
    now, grace = utcnow(), _minutes("PARKING_GRACE_MINUTES")
    return [
        rid
        for rid, starts_at, changed_at in db.session.execute(
            select(Reservation.id, Reservation.starts_at, ParkingSensor.changed_at)
            .join(ParkingSensor, ParkingSensor.space_id == Reservation.space_id)
            .where(
                Reservation.status == "confirmed",
                Reservation.starts_at <= now + grace,
                Reservation.ends_at > now,
                ParkingSensor.occupied.is_(True),
                ParkingSensor.last_seen_at >= offline_cutoff(now),
            )
            .limit(500)
        )
        if changed_at is not None and as_utc(changed_at) >= as_utc(starts_at) - grace
    ]


def _arrive(reservation: Reservation) -> bool:
    sensor = _sensor_of(reservation.space_id)
    if reservation.status != "confirmed" or sensor is None or not sensor.occupied:
        return False
    reservation.status, reservation.arrived_at = "active", sensor.changed_at
    reservation.updated_at = utcnow()
    return True


def _taken_at_start() -> list[str]:
    """Confirmed reservations whose start has come while their space is still occupied by a car
    that was there before the arrival margin: someone else's."""
    now, grace = utcnow(), _minutes("PARKING_GRACE_MINUTES")
    return [
        rid
        for rid, starts_at, changed_at in db.session.execute(
            select(Reservation.id, Reservation.starts_at, ParkingSensor.changed_at)
            .join(ParkingSensor, ParkingSensor.space_id == Reservation.space_id)
            .where(
                Reservation.status == "confirmed",
                Reservation.starts_at <= now,
                ParkingSensor.occupied.is_(True),
                ParkingSensor.last_seen_at >= offline_cutoff(now),
            )
            .limit(500)
        )
        if changed_at is not None and as_utc(changed_at) < as_utc(starts_at) - grace
    ]


def _move_or_refund(reservation: Reservation) -> bool:
    if reservation.status != "confirmed":
        return False
    space = _free_space_like(reservation)
    if space is not None:
        reservation.space_id, reservation.updated_at = space.id, utcnow()
        _tell(
            reservation,
            "parking_moved",
            _l("Reservation moved"),
            _l("Your space was taken; your reservation at %(lot)s moved to space %(code)s."),
            code=space.code,
        )
        return True
    return _cancel_and_refund_in_full(
        reservation,
        "space_taken",
        _l(
            "Your space at %(lot)s was taken and no other was free; %(amount)s is refunded in full."
        ),
        "space taken by another vehicle",
    )


def _free_space_like(reservation: Reservation) -> ParkingSpace | None:
    """Another space of the lot, same kind, free now and not reserved in the window."""
    space = db.session.get(ParkingSpace, reservation.space_id)
    now = utcnow()
    query = (
        select(ParkingSpace)
        .outerjoin(ParkingSensor, ParkingSensor.space_id == ParkingSpace.id)
        .where(
            ParkingSpace.lot_id == reservation.lot_id,
            ParkingSpace.id != reservation.space_id,
            ParkingSpace.kind == (space.kind if space else "car"),
            status_of(now) == "free",
            ParkingSpace.id.not_in(reserved_between(reservation.starts_at, reservation.ends_at)),
        )
        .order_by(ParkingSpace.code)
        .limit(1)
    )
    return db.session.scalars(query).first()


def _no_shows() -> list[str]:
    query = select(Reservation.id).where(
        Reservation.status == "confirmed",
        Reservation.starts_at < utcnow() - _minutes("PARKING_GRACE_MINUTES"),
    )
    return list(db.session.scalars(query.order_by(Reservation.starts_at).limit(500)))


def _no_show(reservation: Reservation) -> bool:
    if reservation.status != "confirmed":
        return False
    sensor = _sensor_of(reservation.space_id)
    if sensor is None or not _online(sensor):
        return _unverified(reservation)
    fee = _percent(reservation.amount_paid, "PARKING_NO_SHOW_FEE_PERCENT")
    reservation.status, reservation.closed_reason = "no_show", "no_show"
    reservation.fee_amount, reservation.updated_at = fee, utcnow()
    _tell(
        reservation,
        "parking_no_show",
        _l("Reservation released"),
        _l("You did not arrive at %(lot)s; the space was released and %(amount)s was kept."),
        amount=Money(fee, reservation.currency),
    )
    db.session.commit()
    _refund(reservation.id, reservation.amount_paid - fee, "no-show: the rest of the payment")
    return True


def _online(sensor: ParkingSensor) -> bool:
    seen = sensor.last_seen_at
    return seen is not None and as_utc(seen) >= offline_cutoff(utcnow())


def _unverified(reservation: Reservation) -> bool:
    """Nobody could see whether the car came (no sensor, or it has fallen silent): release the
    space and refund in full; a no-show fee is never kept on a guess."""
    return _cancel_and_refund_in_full(
        reservation,
        "sensor_offline",
        _l(
            "The sensor of your space at %(lot)s could not tell whether you arrived; the space "
            "was released and %(amount)s is refunded in full."
        ),
        "arrival unknown: the sensor was offline",
    )


def _cancel_and_refund_in_full(
    reservation: Reservation, closed_reason: str, body: Any, refund_reason: str
) -> bool:
    """Cancel a reservation the city could not honour and give all of it back, telling why."""
    reservation.status, reservation.closed_reason = "canceled", closed_reason
    reservation.updated_at = utcnow()
    _tell(
        reservation,
        "parking_refunded",
        _l("Reservation refunded"),
        body,
        amount=Money(reservation.amount_paid, reservation.currency),
    )
    db.session.commit()
    _refund(reservation.id, reservation.amount_paid, refund_reason)
    return True


def _departures() -> list[str]:
    return [
        rid
        for rid, arrived_at, changed_at in db.session.execute(
            select(Reservation.id, Reservation.arrived_at, ParkingSensor.changed_at)
            .join(ParkingSensor, ParkingSensor.space_id == Reservation.space_id)
            .where(Reservation.status == "active", ParkingSensor.occupied.is_(False))
            .limit(500)
        )
        if changed_at is not None
        and (arrived_at is None or as_utc(changed_at) > as_utc(arrived_at))
    ]


def _depart(reservation: Reservation) -> bool:
    sensor = _sensor_of(reservation.space_id)
    if reservation.status != "active" or sensor is None or sensor.occupied is not False:
        return False
    departed_at = sensor.changed_at or utcnow()
    reservation.status, reservation.departed_at = "completed", departed_at
    reservation.closed_reason, reservation.updated_at = "left", utcnow()
    if departed_at > reservation.ends_at + _minutes("PARKING_GRACE_MINUTES"):
        tariff = db.session.get(ParkingTariff, reservation.lot_id)
        if tariff is not None:
            reservation.overstay_amount = max(
                0,
                quote(tariff, reservation.starts_at, departed_at)
                - quote(tariff, reservation.starts_at, reservation.ends_at),
            )
    if reservation.overstay_amount > 0:
        _tell(
            reservation,
            "parking_overstay",
            _l("Overstay charged"),
            _l(
                "You stayed past the end of your reservation at %(lot)s; "
                "%(amount)s is charged to your saved card."
            ),
            amount=Money(reservation.overstay_amount, reservation.currency),
        )
        db.session.commit()
        _bill_overstay(reservation)
    return True


def _unbilled_overstays() -> list[str]:
    query = select(Reservation.id).where(
        Reservation.status == "completed",
        Reservation.overstay_amount > 0,
        Reservation.overstay_payment_id.is_(None),
    )
    return list(db.session.scalars(query.limit(500)))


def _bill_overstay(reservation: Reservation) -> bool:
    """Charge the overstay off-session, once (the key is the reservation's)."""
    if reservation.overstay_amount <= 0 or reservation.overstay_payment_id is not None:
        return False
    reservation_id = reservation.id
    db.session.commit()
    try:
        payment = payments.charge(
            reservation.user_id,
            reservation.overstay_amount,
            reservation.currency,
            OVERSTAY_PURPOSE,
            reservation_id,
            off_session=True,
            idempotency_key=f"reservation-{reservation_id}-overstay",
        )
    except DomainError as error:  # no saved card any more: payments' message says why
        log.warning(
            "overstay not charged", extra={"reservation": reservation_id, "why": str(error.message)}
        )
        return False
    reservation = _reload(reservation_id)
    reservation.overstay_payment_id = payment.id
    if payment.status == "succeeded":
        reservation.overstay_paid = payment.amount
    db.session.commit()
    return True


def _sensor_of(space_id: str) -> ParkingSensor | None:
    return db.session.scalars(
        select(ParkingSensor).where(ParkingSensor.space_id == space_id)
    ).first()


def _tell(reservation: Reservation, kind: str, title: Any, body: Any, **params: Any) -> None:
    """An inbox message about the reservation, in its transaction."""
    lot = db.session.get(ParkingLot, reservation.lot_id)
    inbox.notify(
        reservation.user_id,
        kind,
        title,
        body,
        params={"lot": lot.name if lot else "", **params},
        data={"reservation_id": reservation.id, "lot_id": reservation.lot_id},
    )


def stats_reservations(lot_id: str, since: datetime, until: datetime) -> dict[str, Any]:
    """Reservation counts, no-show rate and revenue for a lot's reservations starting in the
    window (the operator statistics)."""
    rows = db.session.execute(
        select(
            Reservation.status,
            func.count(),
            func.sum(Reservation.amount_paid + Reservation.overstay_paid),
        )
        .where(
            Reservation.lot_id == lot_id,
            Reservation.starts_at >= since,
            Reservation.starts_at < until,
        )
        .group_by(Reservation.status)
    ).all()
    by_status = {status: int(n) for status, n, _ in rows}
    revenue = sum(int(total or 0) for _, _, total in rows)
    came_or_not = by_status.get("no_show", 0) + sum(
        by_status.get(s, 0) for s in ("active", "completed")
    )
    return {
        "reservations": sum(by_status.values()),
        "by_status": by_status,
        "no_show_rate": round(by_status.get("no_show", 0) / came_or_not, 4)
        if came_or_not
        else None,
        "revenue": revenue,
    }


def client_secret(payment: Any) -> str | None:
    """What the app needs to finish 3-D Secure for a ``requires_action`` payment, else None."""
    return payments.client_secret(payment.id) if payment.status == "requires_action" else None
