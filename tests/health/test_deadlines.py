"""The deadline sweeps: reminders, overdue bills charged automatically once, what a failed
automatic charge does, and what paying afterwards undoes."""

import threading
from datetime import datetime, timedelta

import pytest
import time_machine
from sqlalchemy import func, select, text

from civic.service import credit
from core import db
from core.inbox.models import Notification
from health.models import Bill, Settlement
from health.service import deadlines, settlements
from payments import service as payments_service
from payments.models import Payment
from payments.service import charges
from tests.health.conftest import H, bill, save_card, settle, visit


def _deadline(issued) -> datetime:
    return datetime.fromisoformat(issued["deadline"])


def _notices(app, user_id, kind_prefix="health_"):
    with app.app_context():
        rows = db.session.scalars(
            select(Notification)
            .where(Notification.user_id == user_id, Notification.kind.startswith(kind_prefix))
            .order_by(Notification.created_at)
        ).all()
        return [(n.kind, n.title, n.body) for n in rows]


def _sweep(app, at: datetime, runs: int = 1) -> None:
    with app.app_context(), time_machine.travel(at):
        for _ in range(runs):
            deadlines.run()


def _payments_for(app, user_id):
    with app.app_context():
        return db.session.scalars(
            select(Payment).where(Payment.user_id == user_id).order_by(Payment.created_at)
        ).all()


def test_reminders_come_24_hours_and_2_hours_before_the_deadline_once_each(app, member, hospital):
    account = member()
    issued = bill(hospital, account, 12_000)
    due = _deadline(issued)
    with app.app_context():
        for hours_left, sent in ((25, 0), (23, 1), (22, 0), (1.5, 1), (1, 0)):
            with time_machine.travel(due - timedelta(hours=hours_left)):
                assert deadlines.remind() == sent, hours_left
    reminders = [n for n in _notices(app, account.user.id) if "reminder" in n[0]]
    assert [kind for kind, _t, _b in reminders] == [
        "health_bill_reminder_24h",
        "health_bill_reminder_2h",
    ]
    _kind, title, body = reminders[0]
    assert title == "Hospital bill due soon"
    assert "₩12,000" in body and "Seoul General" in body


def test_a_bill_issued_with_less_than_2_hours_left_gets_one_reminder(app, member, hospital):
    app.config["SETTLEMENT_WINDOW_MINUTES"] = 90
    try:
        account = member()
        issued = bill(hospital, account, 1_000)
    finally:
        app.config["SETTLEMENT_WINDOW_MINUTES"] = 2880
    with app.app_context():
        assert deadlines.remind() == 1
        assert deadlines.remind() == 0
    with app.app_context(), time_machine.travel(_deadline(issued) - timedelta(minutes=30)):
        assert deadlines.remind() == 0
    assert [n[0] for n in _notices(app, account.user.id) if "reminder" in n[0]] == [
        "health_bill_reminder_2h"
    ]


def test_a_settled_bill_is_not_reminded(app, member, hospital):
    account = member()
    issued = bill(hospital, account, 1_000)
    settle(account)
    with app.app_context(), time_machine.travel(_deadline(issued) - timedelta(hours=1)):
        assert deadlines.remind() == 0


def test_an_overdue_bill_is_charged_once_even_if_the_sweep_runs_twice(app, member, hospital):
    account = member()
    issued = bill(hospital, account, 25_000)
    _sweep(app, _deadline(issued) - timedelta(seconds=1))
    assert account.api.get(f"{H}/bills/{issued['id']}")["status"] == "open"
    _sweep(app, _deadline(issued) + timedelta(seconds=30), runs=2)
    _sweep(app, _deadline(issued) + timedelta(hours=1))
    (payment,) = _payments_for(app, account.user.id)
    assert (payment.amount, payment.off_session, payment.status) == (25_000, True, "succeeded")
    assert payment.idempotency_key == f"health-bill-{issued['id']}-attempt-1"
    shown = hospital.api.get(f"{H}/bills/{issued['id']}")
    assert shown["status"] == "settled"
    assert account.api.get(f"{H}/credit-line")["status"] == "active"


def test_a_failed_automatic_charge_suspends_the_line_lowers_the_score_and_tells_the_citizen(
    app, member, hospital
):
    account = member(score=600, card="pm_card_chargeCustomerFail")
    issued = bill(hospital, account, 40_000)
    _sweep(app, _deadline(issued) + timedelta(minutes=1), runs=2)
    assert len(_payments_for(app, account.user.id)) == 1
    line = account.api.get(f"{H}/credit-line")
    assert line["status"] == "suspended" and line["used"] == 40_000
    with app.app_context():
        assert credit.standing(account.user.id).score == 600 - app.config["HEALTH_OVERDUE_PENALTY"]
    overdue = [n for n in _notices(app, account.user.id) if n[0] == "health_bill_overdue"]
    assert len(overdue) == 1 and "₩40,000" in overdue[0][2] and "suspended" in overdue[0][2]
    shown = account.api.get(f"{H}/bills/{issued['id']}")
    assert (shown["status"], shown["in_payment"]) == ("overdue", False)
    assert visit(hospital, account)["reason"] == "suspended"
    _sweep(app, _deadline(issued) + timedelta(hours=2))  # no second automatic attempt
    assert len(_payments_for(app, account.user.id)) == 1

    save_card(account, "pm_card_visa")  # the bill stays payable by face
    paid = settle(account, "obama2")
    assert paid["status"] == "succeeded" and paid["bill_ids"] == [issued["id"]]
    assert account.api.get(f"{H}/credit-line")["status"] == "active"
    with app.app_context():
        assert credit.standing(account.user.id).score == 600
        reasons = [e.reason for e in credit.history(account.user.id)]
    assert sorted(reasons[:2]) == ["hospital_bill_overdue", "hospital_bill_paid"]


def test_an_overdue_bill_being_paid_by_face_is_not_charged_automatically(
    app, member, hospital, saved_card_needing_3ds
):
    account = member()
    issued = bill(hospital, account, 5_000)
    assert settle(account, "obama2", expected=202)["status"] == "requires_action"
    _sweep(app, _deadline(issued) + timedelta(minutes=1))
    assert len(_payments_for(app, account.user.id)) == 1
    shown = account.api.get(f"{H}/bills/{issued['id']}")
    assert (shown["status"], shown["in_payment"]) == ("overdue", True)


def test_a_settlement_a_crash_left_without_a_payment_is_resumed_with_the_same_key(
    app, member, hospital
):
    account = member()
    issued = bill(hospital, account, 5_000)
    with app.app_context():
        claimed = settlements.claim(account.user.id, [issued["id"]], kind="face")
        assert deadlines.resume_stalled() == 0  # too fresh: its request may still be running
    with (
        app.app_context(),
        time_machine.travel(datetime.now().astimezone() + timedelta(minutes=11)),
    ):
        assert deadlines.resume_stalled() == 1
        assert deadlines.resume_stalled() == 0
    (payment,) = _payments_for(app, account.user.id)
    assert payment.idempotency_key == f"health-settlement-{claimed}"
    assert account.api.get(f"{H}/bills/{issued['id']}")["status"] == "settled"


class _Killed(BaseException):
    """The scheduler process dying (SIGKILL) right after payments committed its pending row."""


def test_an_automatic_charge_a_crash_stopped_before_stripe_is_made_again_without_a_penalty(
    app, member, hospital, stripe_server, monkeypatch
):
    # Found by `make crash`: payments reconciles such a payment as failed (`not_submitted`);
    # health took that for a decline, penalised the citizen and never charged the bill.
    account = member(score=600)
    issued = bill(hospital, account, 7_000)
    due = _deadline(issued) + timedelta(minutes=1)

    def killed(payment):
        raise _Killed

    with monkeypatch.context() as patch:
        patch.setattr(charges, "_submit", killed)
        with pytest.raises(_Killed):
            _sweep(app, due)
    with app.app_context(), time_machine.travel(due + timedelta(minutes=11)):
        assert payments_service.reconcile() == 1  # never reached Stripe: failed, not_submitted
        deadlines.run()  # the restarted sweep
    first, second = _payments_for(app, account.user.id)
    assert (first.status, first.failure_code) == ("failed", "not_submitted")
    assert first.idempotency_key == f"health-bill-{issued['id']}-attempt-1"
    assert (second.status, second.amount) == ("succeeded", 7_000)
    assert second.idempotency_key == f"health-bill-{issued['id']}-attempt-2"
    intents = stripe_server.list("payment_intents")
    assert [i["metadata"]["payment_id"] for i in intents] == [second.id]
    assert account.api.get(f"{H}/bills/{issued['id']}")["status"] == "settled"
    assert account.api.get(f"{H}/credit-line")["status"] == "active"
    with app.app_context():
        assert credit.standing(account.user.id).score == 600
    assert not [n for n in _notices(app, account.user.id) if n[0] == "health_bill_overdue"]
    with app.app_context(), time_machine.travel(due + timedelta(hours=1)):
        deadlines.run()  # settled: nothing more
    assert len(_payments_for(app, account.user.id)) == 2


def test_marking_overdue_is_one_statement_over_every_due_bill(app, member, hospital):
    account = member()
    issued = [bill(hospital, account, 1_000) for _ in range(3)]
    with app.app_context(), time_machine.travel(_deadline(issued[-1]) + timedelta(seconds=1)):
        statements: list[str] = []
        engine = db.engine()

        def count(_conn, _cursor, statement, *_args):
            statements.append(statement)

        from sqlalchemy import event

        event.listen(engine, "before_cursor_execute", count)
        try:
            assert deadlines.mark_overdue() == 3
        finally:
            event.remove(engine, "before_cursor_execute", count)
    updates = [s for s in statements if s.lstrip().upper().startswith("UPDATE")]
    assert len(updates) == 1


def test_two_sweepers_at_once_charge_each_bill_once(app, member, hospital):
    accounts = [member() for _ in range(3)]
    issued = [bill(hospital, a, 1_000 * (n + 1)) for n, a in enumerate(accounts) for _ in (1, 2)]
    later = max(_deadline(b) for b in issued) + timedelta(minutes=1)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def sweeper() -> None:
        try:
            with app.app_context(), time_machine.travel(later):
                barrier.wait(10)
                deadlines.run()
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=sweeper) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with app.app_context():
        charged = db.session.execute(
            select(Settlement.idempotency_key, func.count())
            .where(Settlement.kind == "automatic")
            .group_by(Settlement.idempotency_key)
        ).all()
        payments = db.session.scalars(select(Payment.idempotency_key)).all()
        settled = db.session.scalar(select(func.count()).where(Bill.status == "settled"))
    assert len(charged) == len(issued) and {n for _k, n in charged} == {1}
    assert sorted(payments) == sorted(k for k, _n in charged)
    assert settled == len(issued)


@pytest.mark.postgresql_only
def test_a_second_sweeper_skips_the_bills_the_first_has_locked(app, member, hospital):
    account = member()
    issued = [bill(hospital, account, 1_000) for _ in range(4)]
    later = max(_deadline(b) for b in issued) + timedelta(minutes=1)
    with app.app_context(), time_machine.travel(later):
        deadlines.mark_overdue()
        held = sorted(b["id"] for b in issued)[:2]
        with db.engine().connect() as first:
            first.execute(
                text("SELECT id FROM health_bills WHERE id = ANY(:ids) FOR UPDATE"),
                {"ids": held},
            )
            claimed = deadlines.claim_overdue(10)  # the second sweeper, meanwhile
            with_bills = db.session.scalars(
                select(Bill.id).where(Bill.settlement_id.in_(claimed))
            ).all()
            db.session.commit()
            first.rollback()
    assert len(claimed) == 2 and set(with_bills).isdisjoint(held)
