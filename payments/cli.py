"""``flask payments ...``: operator commands of the payment rail."""

import click
from flask import current_app
from sqlalchemy import select

from core import db
from core.auth.models import User
from core.errors import DomainError
from core.money import format_amount
from payments import service

payments_cli = click.Group("payments", help="The payment rail.")


@payments_cli.command("charge")
@click.argument("email")
@click.argument("amount", type=int)
@click.option("--currency", default=None, help="ISO 4217 (default: DEFAULT_CURRENCY).")
@click.option("--purpose", default="manual", show_default=True)
@click.option("--reference", required=True, help="The business object, e.g. a bill id.")
def charge(email: str, amount: int, currency: str | None, purpose: str, reference: str) -> None:
    """Charge a citizen's saved card off-session, once per (purpose, reference)."""
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise click.ClickException(f"No user {email}")
    try:
        payment = service.charge(
            user.id,
            amount,
            currency or current_app.config["DEFAULT_CURRENCY"],
            purpose,
            reference,
            off_session=True,
            idempotency_key=f"{purpose}-{reference}",
        )
    except DomainError as error:
        raise click.ClickException(str(error.message)) from None
    click.echo(
        f"payment {payment.id}: {payment.status} {format_amount(payment.amount, payment.currency)}"
    )
    if payment.failure_message:
        click.echo(f"reason: {payment.failure_message}")


@payments_cli.command("reconcile")
def reconcile() -> None:
    """Run the reconciliation sweep now."""
    click.echo(f"reconciled {service.reconcile()} rows")
