"""Fixtures of the civic tests: officials bound to departments, JSON calls with any method."""

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Account


@pytest.fixture
def official(make_account: Callable[..., Account]) -> Account:
    return make_account("official", department="CIVIL-REG")


def send(account: Account, method: str, url: str, json: Any, expected: int, **kw: Any) -> Any:
    """A JSON call with any method (the client has helpers for GET, POST and DELETE only)."""
    return account.api.request(method, url, expected, json=json, **kw).get_json()
