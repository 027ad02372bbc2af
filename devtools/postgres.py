"""Find the PostgreSQL that tests use when ``TEST_DATABASE_URL`` is not set.

``python -m devtools.postgres [URL]`` tries URL (by default the local server,
``postgresql://postgres@127.0.0.1:5432/postgres``): when it answers, prints the URL and exits
0; otherwise prints, in one plain sentence, why the PostgreSQL pass is skipped, and exits 1.
``make test`` and ``make fuzz`` use it.
"""

import sys

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
