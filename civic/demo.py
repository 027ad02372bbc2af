"""civic's demo data (``flask demo seed``): idempotent, returns lines to print."""

from sqlalchemy import select

from civic.service import credit
from core import db
from core.auth.models import User

DEMO_CITIZEN = "citizen@demo.city"
DEMO_SCORE = 650


def seed() -> list[str]:
    """Give the demo citizen a score of 650 (once)."""
    return [_seed_demo_score()]


def _seed_demo_score() -> str:
    citizen = db.session.scalar(select(User).where(User.email == DEMO_CITIZEN))
    if citizen is None:
        return f"credit score: {DEMO_CITIZEN} does not exist"
    current = credit.standing(citizen.id).score
    if current != DEMO_SCORE and credit.history(citizen.id, limit=1) == []:
        credit.post_event(
            citizen.id,
            DEMO_SCORE - current,
            "demo_seed",
            "Demo City",
            key=f"demo-score-{citizen.id}",
        )
    result = credit.standing(citizen.id)
    db.session.commit()
    return f"credit score: {DEMO_CITIZEN} {result.score} (band {result.band})"
