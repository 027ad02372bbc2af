"""One clock: UTC instants, and "today" counted in the city's timezone."""

from datetime import UTC, date, datetime

import time_machine

from core.clock import city_today, utcnow


def test_today_is_the_citys_date_not_utcs(app, monkeypatch):
    # 20:30 UTC on 1 March is already 2 March in Seoul (UTC+9).
    with (
        app.app_context(),
        time_machine.travel(datetime(2026, 3, 1, 20, 30, tzinfo=UTC), tick=False),
    ):
        assert utcnow() == datetime(2026, 3, 1, 20, 30, tzinfo=UTC)
        assert city_today() == date(2026, 3, 2)
        monkeypatch.setitem(app.config, "CITY_TIMEZONE", "America/New_York")
        assert city_today() == date(2026, 3, 1)
