"""civic's demo data (``flask demo seed``): the departments, an official for each, the catalog
of forty services (published), and the demo citizen's credit score of 650. Idempotent."""

from sqlalchemy import select

from civic.demo_catalog import DEPARTMENTS, SERVICES
from civic.models import Department, Service
from civic.service import catalog, credit
from core import db
from core.auth import service as auth
from core.auth.models import User
from core.demo import DEMO_PASSWORD

DEMO_CITIZEN = "citizen@demo.city"
DEMO_SCORE = 650
DEMO_OFFICIAL = "official@demo.city"  # core's demo official, of CIVIL-REG


def seed() -> list[str]:
    """Create what is missing; returns lines to print."""
    _seed_departments()
    officials = _seed_officials()
    created = _seed_services()
    open311 = sum(1 for s in SERVICES if s["open311"])
    return [
        f"civic: {len(DEPARTMENTS)} departments, {len(SERVICES)} services "
        f"({open311} through Open311; {created} new)",
        *officials,
        _seed_demo_score(),
    ]


def _seed_departments() -> None:
    for code, name in DEPARTMENTS:
        if db.session.get(Department, code) is None:
            catalog.create_department(code, name, None)


def official_email(department: str) -> str:
    if department == "CIVIL-REG":
        return DEMO_OFFICIAL
    return f"official.{department.lower()}@demo.city"


def _seed_officials() -> list[str]:
    lines = []
    for code, name in DEPARTMENTS:
        email = official_email(code)
        if db.session.scalar(select(User.id).where(User.email == email)) is None:
            auth.create_user(
                email=email,
                password=DEMO_PASSWORD,
                name=f"{name['en']} Official",
                role="official",
                department_code=code,
            )
        lines.append(f"official           {email} ({code})")
    return lines


def _seed_services() -> int:
    created = 0
    for content in SERVICES:
        code = content["code"]
        if db.session.scalar(select(Service.id).where(Service.code == code)) is not None:
            continue
        catalog.create_service(code, {k: v for k, v in content.items() if k != "code"}, None)
        catalog.publish_service(code, None)
        created += 1
    return created


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
