"""Command line: ``flask users|orgs|db|demo|scheduler ...``."""

import sys
from collections.abc import Callable

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from core import migrations, scheduler
from core.auth import service as auth
from core.auth.models import ORG_KINDS, ROLES
from core.config import is_development
from core.errors import DomainError

users_cli = AppGroup("users", help="Accounts.")
orgs_cli = AppGroup("orgs", help="Organisations and their API keys.")
db_cli = AppGroup("db", help="Database migrations (Alembic).")
demo_cli = AppGroup("demo", help="Demo data.")
scheduler_cli = AppGroup("scheduler", help="Scheduled sweeps.")

DemoSeeder = Callable[[], list[str]]


def register_demo_seeder(app: Flask, seeder: DemoSeeder) -> None:
    """Modules add their demo data; a seeder is idempotent and returns lines to print."""
    app.extensions.setdefault("demo_seeders", []).append(seeder)


def _read_password() -> str:
    if sys.stdin.isatty():
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    return sys.stdin.readline().rstrip("\n")


def _fail_on_domain_error(error: DomainError) -> None:
    raise click.ClickException(str(error.message))


@users_cli.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), default="citizen", show_default=True)
@click.option("--department", help="Department code (officials only).")
@click.option("--name", help="Display name (default: the part of the email before @).")
def create_user(email: str, role: str, department: str | None, name: str | None) -> None:
    """Create a user; the password is read from a prompt or from standard input."""
    password = _read_password()
    if len(password) < 10:
        raise click.ClickException("The password must be at least 10 characters.")
    try:
        auth.check_password(password, email=email, name=name)
        user = auth.create_user(
            email=email,
            password=password,
            name=name or email.split("@")[0],
            role=role,
            department_code=department,
        )
    except DomainError as error:
        _fail_on_domain_error(error)
        return
    click.echo(f"created user {user.id} ({user.email}, {user.role})")


@users_cli.command("deactivate")
@click.argument("email")
def deactivate_user(email: str) -> None:
    """Deactivate a user and end all their login sessions now (audited)."""
    try:
        revoked = auth.deactivate_user(email)
    except DomainError as error:
        _fail_on_domain_error(error)
        return
    click.echo(f"deactivated {email}; {revoked} login session(s) revoked")


@orgs_cli.command("create")
@click.argument("name")
@click.option("--kind", type=click.Choice(ORG_KINDS), required=True)
def create_org(name: str, kind: str) -> None:
    """Create an organisation and print its first API key (shown once)."""
    try:
        organisation = auth.create_organisation(name, kind)
    except DomainError as error:
        _fail_on_domain_error(error)
        return
    issued = auth.issue_api_key(organisation.id, "initial")
    click.echo(f"organisation: {organisation.id} ({organisation.kind})")
    click.echo(f"api_key: {issued.secret}")


@orgs_cli.command("issue-key")
@click.argument("organisation_id")
@click.option("--label", help="What this key is for.")
def issue_key(organisation_id: str, label: str | None) -> None:
    """Issue another API key (rotation); older keys stay valid until revoked."""
    try:
        issued = auth.issue_api_key(organisation_id, label)
    except DomainError as error:
        _fail_on_domain_error(error)
        return
    click.echo(f"key_id: {issued.key.id}")
    click.echo(f"api_key: {issued.secret}")


@orgs_cli.command("revoke-key")
@click.argument("organisation_id")
@click.argument("key_id")
def revoke_key(organisation_id: str, key_id: str) -> None:
    """Revoke an API key."""
    try:
        auth.revoke_api_key(organisation_id, key_id)
    except DomainError as error:
        _fail_on_domain_error(error)
        return
    click.echo(f"revoked {key_id}")


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Migrate the database up (to head by default)."""
    migrations.upgrade(revision)
    click.echo(f"database at {', '.join(sorted(migrations.current_revisions())) or 'base'}")


@db_cli.command("downgrade")
@click.argument("revision", default="-1")
def db_downgrade(revision: str) -> None:
    """Migrate the database down (one step by default; 'base' removes everything)."""
    migrations.downgrade(revision)
    click.echo(f"database at {', '.join(sorted(migrations.current_revisions())) or 'base'}")


@db_cli.command("current")
def db_current() -> None:
    """Print the database's revision."""
    click.echo(", ".join(sorted(migrations.current_revisions())) or "base")


@demo_cli.command("seed")
def demo_seed() -> None:
    """Create demo accounts and data (idempotent) and print the demo logins."""
    if not is_development(current_app.config):
        raise click.ClickException(
            f"Refusing to seed demo data with APP_ENV={current_app.config['APP_ENV']!r}: "
            "only 'development' and 'test' may have demo accounts."
        )
    lines: list[str] = []
    for seeder in current_app.extensions.get("demo_seeders", []):
        lines.extend(seeder())
    click.echo("Demo data ready.")
    for line in lines:
        click.echo(f"  {line}")


@scheduler_cli.command("run")
@click.option("--poll", default=5.0, show_default=True, help="Standby poll interval, seconds.")
def scheduler_run(poll: float) -> None:
    """Run the scheduled sweeps (one leader; a second copy stands by)."""
    scheduler.run_forever(current_app._get_current_object(), poll_seconds=poll)  # type: ignore[attr-defined]


@scheduler_cli.command("run-once")
@click.argument("job_id")
def scheduler_run_once(job_id: str) -> None:
    """Run one job now, in this process (no leadership needed: jobs are idempotent)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    job = next((j for j in scheduler.jobs_of(app) if j.id == job_id), None)
    if job is None:
        known = ", ".join(j.id for j in scheduler.jobs_of(app))
        raise click.ClickException(f"No job {job_id!r}; known: {known}")
    rows = scheduler.run_job(app, job)
    if rows is None:
        raise click.ClickException(f"{job_id} failed; see the log")
    click.echo(f"{job_id}: {rows} rows")


def init_app(app: Flask) -> None:
    for group in (users_cli, orgs_cli, db_cli, demo_cli, scheduler_cli):
        app.cli.add_command(group)
