"""Configuration from the environment, in one place, with defaults that run on a laptop.

Every setting is documented in the README's configuration table; secrets never live in the
repository. The development defaults below are accepted only when ``APP_ENV`` is exactly
``development`` or ``test``; any other value is a production environment, and ``validate``
refuses to start one without real secrets (see :func:`resolve_app_env` for an unset one).
"""

import ipaddress
import os
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

BASE_DIR = Path(__file__).resolve().parent.parent
# The Stripe API version this code was written against; pinned, never the account default.
STRIPE_API_VERSION = "2026-10-28.endive"  # the version stripe 16.1.0 is generated for
LOCALSTRIPE_URL = "http://127.0.0.1:8420"
LOCALSTRIPE_KEY = "sk_test_localstripe"
LOCALSTRIPE_WEBHOOK = "whsec_localstripe_development_only"
DEV_SECRET = "dev-only-not-a-secret-refused-in-production"  # noqa: S105 - refused in production
DEVELOPMENT_ENVS = ("development", "test")
MIN_SECRET_BYTES = 32


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise RuntimeError(f"{name} must be an integer, got {raw!r}") from exc


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def default_database_url() -> str:
    """An SQLite file under ``instance/``: the embedded default."""
    return f"sqlite:///{BASE_DIR / 'instance' / 'civic.db'}"


def normalise_database_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs (SQLAlchemy would pick psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def load() -> dict[str, Any]:
    """Read every setting from the environment."""
    config: dict[str, Any] = {
        "APP_ENV": _env("APP_ENV", ""),  # "" = not set: create_app resolves it
        "DATABASE_URL": normalise_database_url(_env("DATABASE_URL", default_database_url())),
        "SECRET_KEY": _env("SECRET_KEY", DEV_SECRET),
        "JWT_SECRET_KEY": _env("JWT_SECRET_KEY", DEV_SECRET),
        "ACCESS_TOKEN_MINUTES": _int("ACCESS_TOKEN_MINUTES", 15),
        "REFRESH_TOKEN_DAYS": _int("REFRESH_TOKEN_DAYS", 30),
        "CITY_TIMEZONE": _env("CITY_TIMEZONE", "Asia/Seoul"),
        "DEFAULT_CURRENCY": _env("DEFAULT_CURRENCY", "KRW").upper(),
        "DEFAULT_LOCALE": _env("DEFAULT_LOCALE", "ko"),
        "PORT": _int("PORT", 8000),
        "MAX_CONTENT_LENGTH": _int("MAX_CONTENT_LENGTH", 1024 * 1024),
        "REDIS_URL": _env("REDIS_URL", ""),
        "LOGIN_RATE_LIMIT": _env("LOGIN_RATE_LIMIT", "10 per minute"),
        "REGISTER_RATE_LIMIT": _env("REGISTER_RATE_LIMIT", "10 per hour"),
        "PASSWORD_MIN_SCORE": _int("PASSWORD_MIN_SCORE", 3),
        "TRUSTED_PROXIES": _int("TRUSTED_PROXIES", 0),
        "METRICS_TOKEN": _env("METRICS_TOKEN", ""),
        "METRICS_ALLOWED_NETWORKS": _env("METRICS_ALLOWED_NETWORKS", ""),
        "DATABASE_POOL_SIZE": _int("DATABASE_POOL_SIZE", 10),
        "DATABASE_MAX_OVERFLOW": _int("DATABASE_MAX_OVERFLOW", 10),
        "RATELIMIT_ENABLED": _bool("RATELIMIT_ENABLED", True),
        "IDEMPOTENCY_TTL_HOURS": _int("IDEMPOTENCY_TTL_HOURS", 24),
        "SCHEDULER_EMBEDDED": _bool("SCHEDULER_EMBEDDED", False),
        "SCHEDULER_LOCK_FILE": _env(
            "SCHEDULER_LOCK_FILE", str(BASE_DIR / "instance" / "scheduler.lock")
        ),
        "LOG_LEVEL": _env("LOG_LEVEL", "INFO").upper(),
        **_stripe(),
        "PAYMENT_MAX_AMOUNT": _int("PAYMENT_MAX_AMOUNT", 100_000_000),
        "PAYMENT_RECONCILE_AFTER_SECONDS": _int("PAYMENT_RECONCILE_AFTER_SECONDS", 300),
        "OFF_SESSION_CONSENT_VERSION": _env("OFF_SESSION_CONSENT_VERSION", "2026-11"),
    }
    return config


def _stripe() -> dict[str, Any]:
    """Stripe settings. Without a real key, every process (server, CLI, scheduler) talks to the
    localstripe that `make run` starts on loopback, with a development webhook secret."""
    key = _env("STRIPE_SECRET_KEY", "")
    return {
        "STRIPE_SECRET_KEY": key or LOCALSTRIPE_KEY,
        "STRIPE_API_BASE": _env("STRIPE_API_BASE", "" if key else LOCALSTRIPE_URL),
        "STRIPE_API_VERSION": _env("STRIPE_API_VERSION", STRIPE_API_VERSION),
        "STRIPE_WEBHOOK_SECRET": _env("STRIPE_WEBHOOK_SECRET", "" if key else LOCALSTRIPE_WEBHOOK),
    }


def resolve_app_env(raw: str, *, testing: bool, command_line: bool) -> str:
    """The environment the app runs in. A value that is set is taken exactly as written
    (``Production``, ``prod`` and ``staging`` are all production environments). An unset one is
    ``test`` for a test app, ``development`` for the ``flask`` command line (``make run``, the
    development server, operator commands on a laptop), and ``production`` for anything else:
    gunicorn or any other server that imports ``app:create_app()``."""
    if raw:
        return raw
    if testing:
        return "test"
    return "development" if command_line else "production"


def is_development(config: dict[str, Any]) -> bool:
    """True only for ``APP_ENV`` exactly ``development`` or ``test``: the public development
    defaults (secrets, localstripe, in-memory rate limits, demo data) are allowed there only."""
    return config["APP_ENV"] in DEVELOPMENT_ENVS


def validate(config: dict[str, Any]) -> None:
    """Refuse to start with settings that cannot work or must not reach production."""
    try:
        ZoneInfo(config["CITY_TIMEZONE"])
    except Exception as exc:
        raise RuntimeError(f"CITY_TIMEZONE is not a timezone: {config['CITY_TIMEZONE']!r}") from exc
    if len(config["DEFAULT_CURRENCY"]) != 3 or not config["DEFAULT_CURRENCY"].isalpha():
        raise RuntimeError("DEFAULT_CURRENCY must be an ISO 4217 code such as KRW")
    if config["TRUSTED_PROXIES"] < 0:
        raise RuntimeError("TRUSTED_PROXIES must be 0 or more")
    metrics_networks(config)  # raises on a malformed network
    if not is_development(config):
        problems = production_problems(config)
        if problems:
            raise RuntimeError(
                f"APP_ENV={config['APP_ENV']!r} is a production environment (only 'development' "
                f"and 'test' may use the development defaults); fix: {'; '.join(problems)}."
            )


def production_problems(config: dict[str, Any]) -> list[str]:
    """Everything a production environment lacks, each named, so one start shows them all."""
    problems = []
    for key in ("SECRET_KEY", "JWT_SECRET_KEY"):
        value = str(config.get(key) or "")
        if value == DEV_SECRET:
            problems.append(f"{key} is the public development value")
        elif len(value.encode()) < MIN_SECRET_BYTES:
            problems.append(f"{key} must be at least {MIN_SECRET_BYTES} random bytes")
    if config.get("SECRET_KEY") == config.get("JWT_SECRET_KEY"):
        problems.append("SECRET_KEY and JWT_SECRET_KEY must differ")
    stripe_key = str(config.get("STRIPE_SECRET_KEY") or "")
    if stripe_key == LOCALSTRIPE_KEY or not stripe_key.startswith(("sk_", "rk_")):
        problems.append("STRIPE_SECRET_KEY must be a real Stripe key (sk_... or rk_...)")
    webhook_secret = config.get("STRIPE_WEBHOOK_SECRET") or ""
    if webhook_secret in ("", LOCALSTRIPE_WEBHOOK):
        problems.append("STRIPE_WEBHOOK_SECRET must be the endpoint's signing secret")
    if not config.get("REDIS_URL"):
        problems.append("REDIS_URL must be set (rate limits shared by every worker)")
    return problems


def metrics_networks(
    config: dict[str, Any],
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """``METRICS_ALLOWED_NETWORKS`` parsed: comma-separated addresses or CIDR networks."""
    networks = []
    for part in str(config.get("METRICS_ALLOWED_NETWORKS") or "").split(","):
        if part.strip():
            try:
                networks.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError as exc:
                raise RuntimeError(f"METRICS_ALLOWED_NETWORKS: not a network: {part!r}") from exc
    return networks
