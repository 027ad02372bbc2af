"""``flask demo seed`` adds civic's demo data, idempotently."""

from sqlalchemy import select

from civic.service import credit
from core import db
from core.auth.models import User


def test_the_demo_citizen_scores_650_however_often_the_seed_runs(app):
    runner = app.test_cli_runner()
    for _ in range(2):
        result = runner.invoke(args=["demo", "seed"])
        assert result.exit_code == 0, result.output
    assert "credit score: citizen@demo.city 650 (band 600-699)" in result.output
    with app.app_context():
        citizen = db.session.scalar(select(User).where(User.email == "citizen@demo.city"))
        assert citizen is not None
        assert credit.standing(citizen.id).score == 650
        assert len(credit.history(citizen.id)) == 1
