"""Configuration from the environment, in one place, with defaults that run on a laptop.

Every setting is documented in the README's configuration table; secrets never live in the
repository. The development defaults below are accepted only when ``APP_ENV`` is exactly
``development`` or ``test``; any other value is a production environment, and ``validate``
refuses to start one without real secrets (see :func:`resolve_app_env` for an unset one).
"""

import base64
import ipaddress
import os
import socket
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

BASE_DIR = Path(__file__).resolve().parent.parent
# The Stripe API version this code was written against; pinned, never the account default.
STRIPE_API_VERSION = "2026-10-28.endive"  # the version stripe 16.1.0 is generated for
LOCALSTRIPE_URL = "http://127.0.0.1:8420"
# Where `make run` writes the URL of the localstripe it started (its port follows PORT).
LOCALSTRIPE_URL_FILE = BASE_DIR / "instance" / "localstripe.url"
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


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise RuntimeError(f"{name} must be a number, got {raw!r}") from exc


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _per_currency(prefix: str) -> dict[str, int]:
    """``PAYMENT_MAX_AMOUNT_USD=100000`` and the like, as ``{"USD": 100000}``."""
    return {
        name[len(prefix) :].upper(): _int(name, 0)
        for name in sorted(os.environ)
        if name.startswith(prefix) and os.environ[name] != ""
    }


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
        "PAYMENT_MAX_AMOUNT": _int("PAYMENT_MAX_AMOUNT", 99_999_999),
        "PAYMENT_MAX_AMOUNTS": _per_currency("PAYMENT_MAX_AMOUNT_"),
        "PAYMENT_RECONCILE_AFTER_SECONDS": _int("PAYMENT_RECONCILE_AFTER_SECONDS", 300),
        "PAYMENT_REQUIRES_ACTION_HOURS": _int("PAYMENT_REQUIRES_ACTION_HOURS", 24),
        "OFF_SESSION_CONSENT_VERSION": _env("OFF_SESSION_CONSENT_VERSION", "2026-11"),
        **_civic(),
        **_health(),
        **_parking(),
    }
    return config


def _civic() -> dict[str, Any]:
    """civic: the credit score's range, uploads, unpaid applications, certificates, Open311."""
    return {
        "CREDIT_SCORE_MIN": _int("CREDIT_SCORE_MIN", 350),
        "CREDIT_SCORE_MAX": _int("CREDIT_SCORE_MAX", 950),
        "CREDIT_SCORE_BASELINE": _int("CREDIT_SCORE_BASELINE", 500),
        "CIVIC_UPLOAD_DIR": _env("CIVIC_UPLOAD_DIR", str(BASE_DIR / "instance" / "civic-uploads")),
        "CIVIC_UPLOAD_MAX_BYTES": _int("CIVIC_UPLOAD_MAX_BYTES", 10 * 1024 * 1024),
        "CIVIC_PAYMENT_EXPIRY_HOURS": _int("CIVIC_PAYMENT_EXPIRY_HOURS", 72),
        # PEM text of an Ed25519 private key, or the path of a PEM file; empty in development:
        # a key is generated into instance/ (refused in production).
        "CIVIC_SIGNING_KEY": _env("CIVIC_SIGNING_KEY", ""),
        "CIVIC_CERTIFICATE_ISSUER": _env("CIVIC_CERTIFICATE_ISSUER", "demo.city"),
        "OPEN311_JURISDICTION_ID": _env("OPEN311_JURISDICTION_ID", "demo.city"),
        "OPEN311_REQUEST_TYPE": _env("OPEN311_REQUEST_TYPE", "realtime"),
        "OPEN311_CONTACT": _env("OPEN311_CONTACT", "Demo City 311, 311@demo.city"),
    }


def _health() -> dict[str, Any]:
    """health: pay after treatment, settled by face within a window."""
    return {
        "SETTLEMENT_WINDOW_MINUTES": _int("SETTLEMENT_WINDOW_MINUTES", 2880),
        "HEALTH_TERMS_VERSION": _env("HEALTH_TERMS_VERSION", "2026-11"),
        "CHECKIN_CODE_MINUTES": _int("CHECKIN_CODE_MINUTES", 5),
        "HEALTH_OVERDUE_PENALTY": _int("HEALTH_OVERDUE_PENALTY", 40),
        "HEALTH_AUTO_CHARGES_PER_RUN": _int("HEALTH_AUTO_CHARGES_PER_RUN", 200),
        "HEALTH_AUTO_CHARGES_PER_SECOND": _float("HEALTH_AUTO_CHARGES_PER_SECOND", 5.0),
        "FACE_KEY": _env("FACE_KEY", ""),
        "FACE_MATCH_THRESHOLD": _float("FACE_MATCH_THRESHOLD", 0.5),
        "FACE_REPLAY_DISTANCE": _float("FACE_REPLAY_DISTANCE", 0.12),
        "FACE_MAX_ATTEMPTS": _int("FACE_MAX_ATTEMPTS", 5),
        "FACE_LOCK_MINUTES": _int("FACE_LOCK_MINUTES", 30),
        "FACE_MAX_UPLOAD_BYTES": _int("FACE_MAX_UPLOAD_BYTES", 2 * 1024 * 1024),
        "FACE_DETECTION_MAX_SIDE": _int("FACE_DETECTION_MAX_SIDE", 640),
    }


def _parking() -> dict[str, Any]:
    """Parking: the MQTT ingest worker and the reservation policy."""
    return {
        "MQTT_URL": _env("MQTT_URL", "mqtt://127.0.0.1:1883"),
        "MQTT_TOPIC_PREFIX": _env("MQTT_TOPIC_PREFIX", "city"),
        # $share/<group>/...: brokers spread messages among ingest processes; empty: a plain
        # subscription (for a broker without shared subscriptions, e.g. the embedded amqtt).
        "MQTT_SHARED_GROUP": _env("MQTT_SHARED_GROUP", "ingest"),
        "MQTT_CLIENT_ID": _env("MQTT_CLIENT_ID", f"parking-ingest-{socket.gethostname()}"),
        "MQTT_CONNECTIONS": _int("MQTT_CONNECTIONS", 4),
        "MQTT_BATCH_SIZE": _int("MQTT_BATCH_SIZE", 1000),
        "MQTT_FLUSH_MS": _int("MQTT_FLUSH_MS", 200),
        "PARKING_SENSOR_OFFLINE_SECONDS": _int("PARKING_SENSOR_OFFLINE_SECONDS", 1200),
        "PARKING_HOLD_MINUTES": _int("PARKING_HOLD_MINUTES", 10),
        "PARKING_GRACE_MINUTES": _int("PARKING_GRACE_MINUTES", 15),
        "PARKING_FREE_CANCEL_MINUTES": _int("PARKING_FREE_CANCEL_MINUTES", 30),
        "PARKING_LATE_CANCEL_FEE_PERCENT": _int("PARKING_LATE_CANCEL_FEE_PERCENT", 50),
        "PARKING_NO_SHOW_FEE_PERCENT": _int("PARKING_NO_SHOW_FEE_PERCENT", 100),
        "PARKING_REMINDER_MINUTES": _int("PARKING_REMINDER_MINUTES", 30),
        "PARKING_AVAILABILITY_CACHE_SECONDS": _int("PARKING_AVAILABILITY_CACHE_SECONDS", 1),
    }


def _stripe() -> dict[str, Any]:
    """Stripe settings. Without a real key, every process (server, CLI, scheduler) talks to the
    localstripe that `make run` starts on loopback, with a development webhook secret."""
    key = _env("STRIPE_SECRET_KEY", "")
    return {
        "STRIPE_SECRET_KEY": key or LOCALSTRIPE_KEY,
        "STRIPE_API_BASE": _env("STRIPE_API_BASE", "" if key else _running_localstripe()),
        "STRIPE_API_VERSION": _env("STRIPE_API_VERSION", STRIPE_API_VERSION),
        "STRIPE_WEBHOOK_SECRET": _env("STRIPE_WEBHOOK_SECRET", "" if key else LOCALSTRIPE_WEBHOOK),
    }


def _running_localstripe() -> str:
    """The localstripe this checkout's `make run` started, else the default address."""
    try:
        return LOCALSTRIPE_URL_FILE.read_text().strip() or LOCALSTRIPE_URL
    except OSError:
        return LOCALSTRIPE_URL


def _base64(value: str) -> bytes:
    text = value.strip().replace("+", "-").replace("/", "_")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        return b""


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
    low, base, high = (
        config[k] for k in ("CREDIT_SCORE_MIN", "CREDIT_SCORE_BASELINE", "CREDIT_SCORE_MAX")
    )
    if not low <= base <= high or low == high:
        raise RuntimeError("Need CREDIT_SCORE_MIN <= CREDIT_SCORE_BASELINE <= CREDIT_SCORE_MAX")
    if config["OPEN311_REQUEST_TYPE"] not in ("realtime", "batch"):
        raise RuntimeError("OPEN311_REQUEST_TYPE must be realtime or batch")
    if not 0 < config["FACE_REPLAY_DISTANCE"] < config["FACE_MATCH_THRESHOLD"] < 0.6:
        raise RuntimeError("Need 0 < FACE_REPLAY_DISTANCE < FACE_MATCH_THRESHOLD < 0.6")
    if config["FACE_KEY"] and len(_base64(config["FACE_KEY"])) != 32:
        raise RuntimeError("FACE_KEY must be 32 random bytes, base64-encoded")
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
    if not config.get("CIVIC_SIGNING_KEY"):
        problems.append("CIVIC_SIGNING_KEY must be set (an Ed25519 private key, PEM)")
    if not config.get("FACE_KEY"):
        problems.append("FACE_KEY must be set (the development key is refused)")
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
