"""Alembic environment: the models' metadata, the URL from the app (or the environment)."""

import importlib
from typing import Any

from alembic import context
from sqlalchemy import engine_from_config, pool

from core.config import load as load_config
from core.db import Base

# Every module that defines tables; autogenerate compares the database with these.
MODEL_MODULES = (
    "core.auth.models",
    "core.audit.models",
    "core.inbox.models",
    "core.idempotency",
    "core.scheduler",
    "payments.models",
)
for name in MODEL_MODULES:
    importlib.import_module(name)

config = context.config
if not config.get_main_option("sqlalchemy.url"):
    config.set_main_option("sqlalchemy.url", load_config()["DATABASE_URL"])
target_metadata = Base.metadata


def _configure(**kwargs: Any) -> None:
    url = config.get_main_option("sqlalchemy.url") or ""
    context.configure(
        target_metadata=target_metadata,
        render_as_batch=url.startswith("sqlite"),  # SQLite alters tables by copying them
        compare_type=True,
        **kwargs,
    )


def run_migrations_offline() -> None:
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
