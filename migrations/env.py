"""Alembic environment: the models' metadata, the URL from the app (or the environment).

The models are found, not listed: importing the app imports core and every module, and each
``models`` module of those packages is imported too, so a new module's tables need no entry here.
"""

import importlib
import pkgutil
from typing import Any

from alembic import context
from sqlalchemy import engine_from_config, pool

import app as application
import core
from core.config import load as load_config
from core.db import Base


def _import_models() -> None:
    for package in (core, *application.MODULES):
        prefix = f"{package.__name__}."
        for info in pkgutil.walk_packages(package.__path__, prefix):
            if info.name.rsplit(".", 1)[-1] == "models":
                importlib.import_module(info.name)


_import_models()
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
