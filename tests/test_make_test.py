"""``make test`` finds the local PostgreSQL by itself, and says plainly when it skips it."""

import os

import pytest

from devtools import postgres
from devtools.localstripe import free_port


def test_without_a_server_the_postgresql_pass_is_skipped_with_the_reason(capsys):
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    assert postgres.main([url]) == 1
    said = capsys.readouterr().out
    assert said.startswith("PostgreSQL pass SKIPPED: TEST_DATABASE_URL is not set and ")
    assert url in said and "refused" in said.lower()


@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="no PostgreSQL to find")
def test_a_server_that_answers_is_used(capsys):
    url = os.environ["TEST_DATABASE_URL"]
    assert postgres.main([url]) == 0
    assert capsys.readouterr().out.strip() == url


def test_the_local_server_is_the_default():
    assert postgres.LOCAL == "postgresql://postgres@127.0.0.1:5432/postgres"
