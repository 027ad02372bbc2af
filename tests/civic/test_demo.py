"""``flask demo seed`` adds civic's demo data, idempotently."""

from sqlalchemy import func, select

from civic.demo_catalog import DEPARTMENTS, SERVICES
from civic.models import Service
from civic.service import credit
from core import db
from core.auth.models import User
from tests.civic.conftest import SERVICES as SERVICES_URL


def seed(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["demo", "seed"])
    assert result.exit_code == 0, result.output
    return result.output


def test_the_demo_catalog_is_seeded_once_and_found_in_three_languages(app, client):
    seed(app)
    output = seed(app)
    assert "civic: 10 departments, 40 services (12 through Open311; 0 new)" in output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Service)) == 40
    assert len(SERVICES) >= 30 and sum(s["fee"] is not None for s in SERVICES) >= 10
    for query, lang, code in (
        ("재발급", "ko", "PASSPORT-REISSUE"),
        ("passport", "en", "PASSPORT-NEW"),
        ("护照", "zh", "PASSPORT-NEW"),
        ("포트홀", "ko", "POTHOLE"),
    ):
        found = client.get(f"{SERVICES_URL}?q={query}&lang={lang}&page_size=50")
        assert code in [s["code"] for s in found], query
    categories = {s["category"] for s in SERVICES}
    assert len(categories) >= 8
    listed = client.get("/open311/v2/services.json")
    assert len(listed) == 12


def test_every_department_has_an_official_who_can_log_in(app, client):
    output = seed(app)
    for code, _name in DEPARTMENTS:
        email = (
            "official@demo.city" if code == "CIVIL-REG" else f"official.{code.lower()}@demo.city"
        )
        assert f"{email} ({code})" in output
        with app.app_context():
            official = db.session.scalar(select(User).where(User.email == email))
            assert official is not None and official.department_code == code
    client.post(
        "/api/v1/auth/login", {"email": "official.roads@demo.city", "password": "demo-password"}
    )


def test_the_demo_citizen_scores_650_however_often_the_seed_runs(app):
    seed(app)
    output = seed(app)
    assert "credit score: citizen@demo.city 650 (band 600-699)" in output
    with app.app_context():
        citizen = db.session.scalar(select(User).where(User.email == "citizen@demo.city"))
        assert citizen is not None
        assert credit.standing(citizen.id).score == 650
        assert len(credit.history(citizen.id)) == 1
