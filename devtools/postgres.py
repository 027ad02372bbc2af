"""Find the PostgreSQL that tests use when ``TEST_DATABASE_URL`` is not set.

``python -m devtools.postgres [URL]`` tries URL (by default the local server,
``postgresql://postgres@127.0.0.1:5432/postgres``): when it answers, prints the URL and exits
0; otherwise prints, in one plain sentence, why the PostgreSQL pass is skipped, and exits 1.
``make test`` and ``make fuzz`` use it.

:func:`scratch_database` makes a throw-away database on a server for one run and drops it
after (the benchmarks, ``make crash`` and ``make rehearse`` use it).
"""

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

LOCAL = "postgresql://postgres@127.0.0.1:5432/postgres"


def probe(url: str) -> str | None:
    """None when ``url`` accepts a connection, else the reason it does not."""
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return reason
    return None


@contextmanager
def scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new empty database ``<prefix>_<random>`` on the server of ``server_url`` (any database
    of it); yields its URL and drops it at the end, connections and all."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from core.config import normalise_database_url

    server = make_url(normalise_database_url(server_url))
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield server.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def main(argv: list[str]) -> int:
    url = argv[0] if argv else LOCAL
    reason = probe(url)
    if reason is None:
        print(url)
        return 0
    print(
        f"PostgreSQL pass SKIPPED: TEST_DATABASE_URL is not set and {url} does not answer "
        f"({reason}). Start PostgreSQL there or set TEST_DATABASE_URL."
    )
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
