"""The migrations are the schema: they go down and up cleanly and agree with the models."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from core import db, migrations
from core.db import Base
from tests.conftest import build_app


def test_downgrade_to_base_then_upgrade_to_head_is_clean_and_matches_the_models(
    databases, tmp_path
):
    app = build_app(databases.create(), tmp_path)
    with app.app_context():
        migrations.upgrade()
        migrations.downgrade("base")
        assert set(inspect(db.engine()).get_table_names()) <= {"alembic_version"}
        migrations.upgrade()
        assert migrations.is_at_head()
        with db.engine().connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
        assert set(Base.metadata.tables) <= set(inspect(db.engine()).get_table_names())
    app.extensions["db_engine"].dispose()


def test_the_suite_runs_on_the_backend_it_was_asked_for(app):
    from core import db
    from tests.conftest import BACKEND

    with app.app_context():
        assert db.engine().dialect.name == BACKEND
