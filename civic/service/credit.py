"""The city credit score: a ledger of events per citizen, a materialised score, and bands.

Other modules read a citizen's standing with :func:`standing` and ask for a change with
:func:`request_event` (written into *their* transaction through the outbox; civic applies it
once per key after their commit). civic's own route posts with :func:`post_event`.
"""

import re
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any

from flask import current_app
from sqlalchemy import case, select, update
from sqlalchemy.exc import IntegrityError

from civic.models import CreditBands, CreditScore, ScoreEvent
from core import db, outbox
from core.audit import service as audit
from core.auth.models import User
from core.auth.principal import Principal
from core.clock import utcnow
from core.errors import InvalidInput
from core.i18n import _l
from core.money import SUPPORTED

TOPIC = "civic.credit_event_requested"
SUBSCRIBER = "civic.apply_credit_event"
_REASON = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
HISTORY_SHOWN = 100

# Version 1 of the bands, in force until an administrator saves another.
DEFAULT_THRESHOLD = 550
DEFAULT_BANDS: tuple[dict[str, Any], ...] = (
    {"min": 550, "max": 599, "limit": 300_000},
    {"min": 600, "max": 699, "limit": 1_000_000},
    {"min": 700, "max": 749, "limit": 2_000_000},
    {"min": 750, "max": None, "limit": 3_000_000},
)


@dataclass(frozen=True)
class Standing:
    user_id: str
    score: int
    band: str | None  # the band's label, e.g. "550-599"; None below the threshold
    limit: int  # pay-after-treatment credit limit, minor units (0 below the threshold)
    currency: str
    eligible: bool  # score >= threshold
    threshold: int
    band_version: int  # the bands version this standing was computed under


@dataclass(frozen=True)
class Bands:
    """One version of the bands, as in force or as it was."""

    version: int
    threshold: int
    currency: str
    bands: list[dict[str, Any]]
    created_by: str
    created_at: datetime | None

    def band_of(self, score: int) -> dict[str, Any] | None:
        """The band ``score`` falls in; None below the threshold."""
        if score < self.threshold:
            return None
        for band in self.bands:
            if band["min"] <= score and (band["max"] is None or score <= band["max"]):
                return band
        return None


def label(band: dict[str, Any]) -> str:
    """A band's label: ``550-599``, or ``750+`` for the open-ended top band."""
    return f"{band['min']}+" if band["max"] is None else f"{band['min']}-{band['max']}"


# --- reading -------------------------------------------------------------------------------


def standing(user_id: str) -> Standing:
    """The citizen's score, band, limit and eligibility now (read-only; commits nothing).

    A citizen with no events stands at the baseline.
    """
    score = db.session.scalar(select(CreditScore.score).where(CreditScore.user_id == user_id))
    if score is None:
        score = current_app.config["CREDIT_SCORE_BASELINE"]
    bands = current_bands()
    band = bands.band_of(score)
    return Standing(
        user_id=user_id,
        score=score,
        band=label(band) if band else None,
        limit=band["limit"] if band else 0,
        currency=bands.currency,
        eligible=score >= bands.threshold,
        threshold=bands.threshold,
        band_version=bands.version,
    )


def history(user_id: str, limit: int = HISTORY_SHOWN) -> list[ScoreEvent]:
    """The citizen's latest events, newest first."""
    query = (
        select(ScoreEvent)
        .where(ScoreEvent.user_id == user_id)
        .order_by(ScoreEvent.created_at.desc(), ScoreEvent.id)
        .limit(limit)
    )
    return list(db.session.scalars(query))


def my_credit(user_id: str) -> dict[str, Any]:
    """What ``GET /credit`` shows the citizen: the standing and the history with reasons."""
    result = standing(user_id)
    return {**result.__dict__, "history": history(user_id)}


def current_bands() -> Bands:
    """The bands in force: the highest saved version, else the defaults (version 1)."""
    row = db.session.scalars(
        select(CreditBands).order_by(CreditBands.version.desc()).limit(1)
    ).first()
    return _bands_of(row) if row is not None else _default_bands()


def bands_history() -> list[Bands]:
    """Every version of the bands, newest first (the defaults count as version 1)."""
    rows = db.session.scalars(select(CreditBands).order_by(CreditBands.version.desc()))
    versions = [_bands_of(row) for row in rows]
    if not versions or versions[-1].version != 1:
        versions.append(_default_bands())
    return versions


def bands_view() -> dict[str, Any]:
    """What ``GET /credit/bands`` shows: the version in force and the ones before it."""
    versions = [_describe(b) for b in bands_history()]
    return {**versions[0], "history": versions[1:]}


def _describe(bands: Bands) -> dict[str, Any]:
    return {
        "version": bands.version,
        "threshold": bands.threshold,
        "currency": bands.currency,
        "bands": [{**band, "label": label(band)} for band in bands.bands],
        "created_by": bands.created_by,
        "created_at": bands.created_at,
    }


def _bands_of(row: CreditBands) -> Bands:
    return Bands(
        row.version, row.threshold, row.currency, row.bands, row.created_by, row.created_at
    )


def _default_bands() -> Bands:
    currency = current_app.config["DEFAULT_CURRENCY"]
    return Bands(1, DEFAULT_THRESHOLD, currency, [dict(b) for b in DEFAULT_BANDS], "default", None)


# --- changing the bands --------------------------------------------------------------------


def save_bands(
    threshold: int, bands: list[dict[str, Any]], currency: str | None, actor: Principal
) -> dict[str, Any]:
    """Put a new version of the bands in force (audited); earlier versions stay as they were."""
    currency = (currency or current_app.config["DEFAULT_CURRENCY"]).upper()
    ordered = _checked_bands(threshold, bands, currency)
    current = current_bands()
    if db.session.get(CreditBands, current.version) is None:  # keep the defaults in history
        db.session.add(_row_of(current))
    row = CreditBands(
        version=current.version + 1,
        threshold=threshold,
        currency=currency,
        bands=ordered,
        created_by=actor.actor,
        created_at=utcnow(),
    )
    db.session.add(row)
    audit.record(
        actor,
        "credit.bands_saved",
        "credit_bands",
        str(row.version),
        before=_describe(current) | {"created_at": None},
        after=_describe(_bands_of(row)) | {"created_at": None},
    )
    try:
        db.session.commit()
    except IntegrityError:  # another administrator saved the same version number first
        db.session.rollback()
        raise InvalidInput(
            _l("The bands changed meanwhile; reload them and try again."), field="bands"
        ) from None
    return bands_view()


def _row_of(bands: Bands) -> CreditBands:
    return CreditBands(
        version=bands.version,
        threshold=bands.threshold,
        currency=bands.currency,
        bands=bands.bands,
        created_by=bands.created_by,
        created_at=utcnow(),
    )


def _checked_bands(threshold: int, bands: list[dict[str, Any]], currency: str) -> list[dict]:
    """The bands ordered and checked: from the threshold up, contiguous, the top one open."""
    low, high = current_app.config["CREDIT_SCORE_MIN"], current_app.config["CREDIT_SCORE_MAX"]
    if not low <= threshold <= high:
        raise InvalidInput(
            _l(
                "Must be greater than or equal to %(min)s and less than or equal to %(max)s.",
                min=low,
                max=high,
            ),
            field="threshold",
        )
    if currency not in SUPPORTED:
        raise InvalidInput(
            _l("Currency %(currency)s is not supported.", currency=currency), field="currency"
        )
    ordered = sorted(
        ({"min": b["min"], "max": b.get("max"), "limit": b["limit"]} for b in bands),
        key=lambda b: b["min"],
    )
    if not ordered or ordered[0]["min"] != threshold:
        raise InvalidInput(_l("The first band must start at the threshold."), field="bands")
    for before, after in pairwise(ordered):
        if before["max"] is None or after["min"] != before["max"] + 1:
            raise InvalidInput(
                _l("Bands must follow each other without gaps or overlaps."), field="bands"
            )
    for band in ordered:
        if band["max"] is not None and band["max"] < band["min"]:
            raise InvalidInput(_l("A band's max must not be below its min."), field="bands")
    top = ordered[-1]["max"]
    if top is not None and top < high:
        raise InvalidInput(_l("The top band must reach the highest score."), field="bands")
    return ordered


# --- posting events ------------------------------------------------------------------------


def post_event(
    user_id: str,
    delta: int,
    reason: str,
    agency: str,
    *,
    evidence: str | None = None,
    actor: Principal | None = None,
    key: str | None = None,
) -> ScoreEvent:
    """Add an event to the citizen's ledger and move their score (clamped); commits.

    With ``key``, posting again with the same key returns the first event and changes
    nothing. An event posted by a person (``actor``) is audited.
    """
    _check_event(user_id, delta, reason, agency, evidence)
    if key is not None:
        existing = _event_with_key(key)
        if existing is not None:
            return _same_event(existing, user_id, delta, reason)
    posted_by = actor.actor if actor else "system"
    try:
        event = _apply(user_id, delta, reason, agency, evidence, posted_by, key)
        if actor is not None:
            audit.record(actor, "credit.event_posted", "score_event", event.id, after=_view(event))
        db.session.commit()
    except IntegrityError:  # the same key, posted concurrently: the first one stands
        db.session.rollback()
        existing = _event_with_key(key) if key else None
        if existing is None:
            raise
        return _same_event(existing, user_id, delta, reason)
    return event


def request_event(
    user_id: str,
    delta: int,
    reason: str,
    agency: str,
    *,
    evidence: str | None = None,
    key: str,
) -> None:
    """Ask civic to post an event, inside the caller's transaction (never commits).

    For other modules: nothing is posted unless the caller commits; civic then applies it
    once per ``key``, however often the request is delivered.
    """
    _check_event(user_id, delta, reason, agency, evidence)
    if not key or len(key) > 255:
        raise InvalidInput(
            _l("Length must be between %(min)s and %(max)s.", min=1, max=255), field="key"
        )
    payload = {
        "user_id": user_id,
        "delta": delta,
        "reason": reason,
        "agency": agency,
        "evidence": evidence,
        "key": key,
    }
    outbox.publish(TOPIC, payload)


def apply_requested_event(payload: dict[str, Any]) -> None:
    """The outbox subscriber of :func:`request_event`: applies each key once."""
    if _event_with_key(payload["key"]) is not None:
        return
    if db.session.get(User, payload["user_id"]) is None:
        return  # the account is gone: nothing left to score
    _apply(
        payload["user_id"],
        payload["delta"],
        payload["reason"],
        payload["agency"],
        payload.get("evidence"),
        "system",
        payload["key"],
    )
    db.session.commit()


def _apply(
    user_id: str,
    delta: int,
    reason: str,
    agency: str,
    evidence: str | None,
    posted_by: str,
    key: str | None,
) -> ScoreEvent:
    """Move the materialised score and append the event, in the open transaction."""
    score_after = _move_score(user_id, delta)
    event = ScoreEvent(
        user_id=user_id,
        delta=delta,
        reason=reason,
        agency=agency,
        evidence=evidence,
        posted_by=posted_by,
        key=key,
        score_after=score_after,
        created_at=utcnow(),
    )
    db.session.add(event)
    db.session.flush()
    return event


def _move_score(user_id: str, delta: int) -> int:
    """Add ``delta`` to the score, clamped to the settings' range, in one locking UPDATE."""
    config = current_app.config
    low, high = config["CREDIT_SCORE_MIN"], config["CREDIT_SCORE_MAX"]
    db.session.execute(
        db.insert(CreditScore)
        .values(user_id=user_id, score=config["CREDIT_SCORE_BASELINE"], updated_at=utcnow())
        .on_conflict_do_nothing(index_elements=["user_id"])
    )
    moved = CreditScore.score + delta
    clamped = case((moved > high, high), (moved < low, low), else_=moved)
    result = db.session.execute(
        update(CreditScore)
        .where(CreditScore.user_id == user_id)
        .values(score=clamped, updated_at=utcnow())
        .returning(CreditScore.score)
        .execution_options(synchronize_session=False)
    )
    return int(result.scalar_one())


def _check_event(user_id: str, delta: int, reason: str, agency: str, evidence: str | None) -> None:
    span = current_app.config["CREDIT_SCORE_MAX"] - current_app.config["CREDIT_SCORE_MIN"]
    if isinstance(delta, bool) or not isinstance(delta, int) or delta == 0 or abs(delta) > span:
        raise InvalidInput(
            _l("Must be a whole number other than 0, at most %(max)s either way.", max=span),
            field="delta",
        )
    if not _REASON.match(reason or ""):
        raise InvalidInput(
            _l("Must be a reason code: lower-case letters, digits, '_', '.', '-'."),
            field="reason",
        )
    if not agency or not agency.strip() or len(agency) > 100:
        raise InvalidInput(
            _l("Length must be between %(min)s and %(max)s.", min=1, max=100), field="agency"
        )
    if evidence is not None and len(evidence) > 255:
        raise InvalidInput(_l("Longer than maximum length %(max)s.", max=255), field="evidence")
    user = db.session.get(User, user_id)
    if user is None or user.role != "citizen":
        raise InvalidInput(_l("No such citizen."), field="user_id")


def _event_with_key(key: str) -> ScoreEvent | None:
    return db.session.scalars(select(ScoreEvent).where(ScoreEvent.key == key)).first()


def _same_event(existing: ScoreEvent, user_id: str, delta: int, reason: str) -> ScoreEvent:
    if (existing.user_id, existing.delta, existing.reason) != (user_id, delta, reason):
        raise InvalidInput(_l("This key was already used for a different event."), field="key")
    return existing


def _view(event: ScoreEvent) -> dict[str, Any]:
    return {
        "user_id": event.user_id,
        "delta": event.delta,
        "reason": event.reason,
        "agency": event.agency,
        "evidence": event.evidence,
        "score_after": event.score_after,
    }
