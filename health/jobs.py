"""health's scheduled sweeps; each calls service functions and is safe to run twice."""

from flask import Flask

from core.scheduler import register_job
from health.service import checkin, deadlines


def register(app: Flask) -> None:
    register_job(app, "health.bill_deadlines", deadlines.run, seconds=60)
    register_job(app, "health.bill_reminders", deadlines.remind, seconds=300)
    register_job(app, "health.purge_checkin_codes", checkin.purge_expired, seconds=3600)
