"""`make crash`'s harness, one small round: the real `flask scheduler run` SIGKILLed while it
sweeps, then every invariant checked. The full run (ten kills per scenario) is `make crash`."""

import random

import pytest

from devtools import crash
from devtools.localstripe import LocalStripe

pytestmark = pytest.mark.postgresql_only


def test_one_sigkill_of_the_scheduler_charges_every_due_bill_once(databases, tmp_path, capsys):
    with LocalStripe() as stripe:
        (report,) = crash.run_on(
            databases.create(),
            stripe,
            ["scheduler"],
            rounds=1,
            rng=random.Random(7),
            log_dir=tmp_path,
            scheduler={"citizens": 2, "bills_each": 3, "holds": 3, "rate": 5.0, "kill_within": 1},
        )
    assert report.violations == []
    assert report.counts["SIGKILLs of `flask scheduler run`"] == 1
    assert report.counts["due bills charged exactly once (succeeded PaymentIntents)"] == 6
    assert report.counts["expired holds released once (expired, hold_expired)"] == 3
    assert "due bills charged exactly once" in capsys.readouterr().out
