"""Alembic, driven from the app: the migrations are the only source of the schema."""

from functools import cache

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app

from core import db
from core.config import BASE_DIR


def alembic_config() -> Config:
    """Alembic's config pointing at ``migrations/`` and the current app's database."""
    config = Config()
    config.set_main_option("script_location", str(BASE_DIR / "migrations"))
    config.set_main_option("sqlalchemy.url", current_app.config["DATABASE_URL"])
    return config


def upgrade(revision: str = "head") -> None:
    command.upgrade(alembic_config(), revision)


def downgrade(revision: str) -> None:
    command.downgrade(alembic_config(), revision)


@cache
def head_revisions() -> frozenset[str]:
    """The heads of the migration scripts (read once per process)."""
    return frozenset(ScriptDirectory(str(BASE_DIR / "migrations")).get_heads())


def current_revisions() -> frozenset[str]:
    """The revisions the database is at."""
    with db.engine().connect() as connection:
        return frozenset(MigrationContext.configure(connection).get_current_heads())


def is_at_head() -> bool:
    return current_revisions() == head_revisions()
