"""Core's demo data: one account per role and one organisation per kind."""

from sqlalchemy import select

from core import db
from core.auth import service as auth
from core.auth.models import ApiKey, Organisation, User
from core.clock import utcnow

DEMO_PASSWORD = "demo-password"  # noqa: S105 - printed for the demo; refused in production
DEMO_USERS = (
    ("admin@demo.city", "Ada Admin", "admin", None),
    ("official@demo.city", "Oscar Official", "official", "CIVIL-REG"),
    ("citizen@demo.city", "Chloe Citizen", "citizen", None),
    ("commission@demo.city", "Hana Commission", "health_commission", None),
)
DEMO_ORGS = (
    ("Demo City Hospital", "hospital"),
    ("Demo Parking Co", "parking_operator"),
    ("Demo 311 Client", "open311_client"),
)


def seed() -> list[str]:
    """Create what is missing; rotate the demo API keys so they can be printed again."""
    lines = [f"password for every demo user: {DEMO_PASSWORD}"]
    for email, name, role, department in DEMO_USERS:
        if db.session.scalar(select(User).where(User.email == email)) is None:
            auth.create_user(
                email=email,
                password=DEMO_PASSWORD,
                name=name,
                role=role,
                department_code=department,
            )
        lines.append(f"{role:<18} {email}")
    for name, kind in DEMO_ORGS:
        organisation = db.session.scalar(select(Organisation).where(Organisation.name == name))
        if organisation is None:
            organisation = auth.create_organisation(name, kind)
        _revoke_old_demo_keys(organisation.id)
        issued = auth.issue_api_key(organisation.id, "demo")
        lines.append(f"{kind:<18} {name}: X-API-Key {issued.secret}")
    return lines


def _revoke_old_demo_keys(organisation_id: str) -> None:
    query = select(ApiKey).where(
        ApiKey.organisation_id == organisation_id,
        ApiKey.label == "demo",
        ApiKey.revoked_at.is_(None),
    )
    for key in db.session.scalars(query):
        key.revoked_at = utcnow()
    db.session.commit()
