"""The health commission's figures for a day in the city's timezone, and the 30 days up to it.

Only counts and sums, never a person: pay-later patients, the usage ratio (pay-later visits /
all visits posted by participating hospitals), the share of the bills due that day settled
within the window, what is overdue, per hospital, and a 30-day series. A day's bounds are the
city's local midnights (so a 23- or 25-hour day counts right), and each figure is one grouped
query over those bounds, not one query per day.
"""

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, func, select

from civic.service import credit
from core import db
from core.auth.models import Organisation
from core.clock import city_timezone, city_today, utcnow
from health.models import Bill, Visit

DAYS = 30


def figures(day: date | None = None) -> dict[str, Any]:
    """The day's figures (today when None), per hospital, and the series of the last 30 days."""
    day = day or city_today()
    days = [day - timedelta(days=DAYS - 1 - i) for i in range(DAYS)]
    bounds = [_midnight(d) for d in days] + [_midnight(day + timedelta(days=1))]
    now = utcnow()
    as_of = [min(end, now) for end in bounds[1:]]
    visits = _visits_by_day(bounds)
    due = _due_by_day(bounds, as_of)
    late = _unpaid_past_deadline(bounds[0], as_of[-1])
    billed = _billed_by_day(bounds)
    series = [
        _day_figures(
            d, visits.get(i, {}), due.get(i, {}), _overdue(late, as_of[i]), billed.get(i, 0)
        )
        for i, d in enumerate(days)
    ]
    today = series[-1]
    return {
        **today,
        "timezone": city_timezone().key,
        "currency": credit.current_bands().currency,
        "as_of": as_of[-1],
        "hospitals": _per_hospital(bounds[-2], bounds[-1], as_of[-1], late),
        "series": series,
    }


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=city_timezone()).astimezone(UTC)


def _bucket(column: Any, bounds: list[datetime]) -> ColumnElement[Any]:
    """Which day (0..29) a timestamp falls in, as SQL (rows outside are filtered apart)."""
    return case(*[(column < bounds[i + 1], i) for i in range(len(bounds) - 1)], else_=-1)


def _visits_by_day(bounds: list[datetime]) -> dict[int, dict[str, int]]:
    bucket = _bucket(Visit.visited_at, bounds).label("day")
    rows = db.session.execute(
        select(
            bucket,
            func.count(),
            func.count(case((Visit.eligible.is_(True), 1))),
            func.count(func.distinct(case((Visit.eligible.is_(True), Visit.user_id)))),
        )
        .where(Visit.visited_at >= bounds[0], Visit.visited_at < bounds[-1])
        .group_by(bucket)
    )
    return {
        int(d): {"visits": int(n), "pay_later_visits": int(p), "pay_later_patients": int(u)}
        for d, n, p, u in rows
    }


def _due_by_day(bounds: list[datetime], as_of: list[datetime]) -> dict[int, dict[str, int]]:
    """Bills whose deadline fell in the day (up to now), and how many were paid by it."""
    bucket = _bucket(Bill.deadline, bounds).label("day")
    in_window = (Bill.settled_at.is_not(None)) & (Bill.settled_at <= Bill.deadline)
    rows = db.session.execute(
        select(bucket, func.count(), func.count(case((in_window, 1))))
        .where(
            Bill.deadline >= bounds[0],
            Bill.deadline < as_of[-1],
            Bill.status != "cancelled",
        )
        .group_by(bucket)
    )
    return {int(d): {"bills_due": int(n), "settled_in_window": int(s)} for d, n, s in rows}


def _billed_by_day(bounds: list[datetime]) -> dict[int, int]:
    bucket = _bucket(Bill.issued_at, bounds).label("day")
    rows = db.session.execute(
        select(bucket, func.coalesce(func.sum(Bill.total), 0))
        .where(Bill.issued_at >= bounds[0], Bill.issued_at < bounds[-1])
        .group_by(bucket)
    )
    return {int(d): int(total) for d, total in rows}


def _unpaid_past_deadline(start: datetime, until: datetime) -> list[tuple[str, datetime, Any, int]]:
    """(hospital, deadline, settled_at, total) of every bill that was unpaid past its deadline
    at some moment since ``start``: the few rows the overdue figures are counted from."""
    rows = db.session.execute(
        select(Bill.hospital_id, Bill.deadline, Bill.settled_at, Bill.total).where(
            Bill.deadline < until,
            Bill.status != "cancelled",
            (Bill.settled_at.is_(None)) | (Bill.settled_at > start),
            (Bill.settled_at.is_(None)) | (Bill.settled_at > Bill.deadline),
        )
    )
    return [(h, d, s, int(t)) for h, d, s, t in rows]


def _overdue(late: list[tuple[str, datetime, Any, int]], moment: datetime) -> dict[str, int]:
    """How many bills, for how much, were past their deadline and unpaid at ``moment``."""
    rows = [t for _h, d, s, t in late if _aware(d) < moment and (s is None or _aware(s) > moment)]
    return {"overdue_count": len(rows), "overdue_amount": sum(rows)}


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _day_figures(
    day: date, visits: dict[str, int], due: dict[str, int], overdue: dict[str, int], billed: int
) -> dict[str, Any]:
    count, pay_later = visits.get("visits", 0), visits.get("pay_later_visits", 0)
    bills_due, in_window = due.get("bills_due", 0), due.get("settled_in_window", 0)
    return {
        "date": day,
        "pay_later_patients": visits.get("pay_later_patients", 0),
        "visits": count,
        "pay_later_visits": pay_later,
        "usage_ratio": _ratio(pay_later, count),
        "bills_due": bills_due,
        "settled_in_window": in_window,
        "settled_in_window_ratio": _ratio(in_window, bills_due),
        "billed_amount": billed,
        **overdue,
    }


def _per_hospital(
    start: datetime, end: datetime, as_of: datetime, late: list[tuple[str, datetime, Any, int]]
) -> list[dict[str, Any]]:
    visits = {
        h: (int(n), int(p))
        for h, n, p in db.session.execute(
            select(Visit.hospital_id, func.count(), func.count(case((Visit.eligible.is_(True), 1))))
            .where(Visit.visited_at >= start, Visit.visited_at < end)
            .group_by(Visit.hospital_id)
        )
    }
    in_window = (Bill.settled_at.is_not(None)) & (Bill.settled_at <= Bill.deadline)
    due = {
        h: (int(n), int(s))
        for h, n, s in db.session.execute(
            select(Bill.hospital_id, func.count(), func.count(case((in_window, 1))))
            .where(Bill.deadline >= start, Bill.deadline < as_of, Bill.status != "cancelled")
            .group_by(Bill.hospital_id)
        )
    }
    overdue = {
        h: _overdue([row for row in late if row[0] == h], as_of) for h in {row[0] for row in late}
    }
    ids = set(visits) | set(due) | {h for h, o in overdue.items() if o["overdue_count"]}
    names = dict(
        db.session.execute(
            select(Organisation.id, Organisation.name).where(Organisation.id.in_(ids))
        )
        .tuples()
        .all()
    )
    result = []
    for hospital_id in sorted(ids, key=lambda h: names.get(h, "")):
        count, pay_later = visits.get(hospital_id, (0, 0))
        bills_due, settled = due.get(hospital_id, (0, 0))
        late_bills = overdue.get(hospital_id, {"overdue_count": 0, "overdue_amount": 0})
        result.append(
            {
                "hospital_id": hospital_id,
                "name": names.get(hospital_id),
                "visits": count,
                "pay_later_visits": pay_later,
                "usage_ratio": _ratio(pay_later, count),
                "bills_due": bills_due,
                "settled_in_window": settled,
                "settled_in_window_ratio": _ratio(settled, bills_due),
                **late_bills,
            }
        )
    return result
