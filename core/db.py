"""The database: one declarative base, one session per app context, UTC datetimes.

Services own the transaction: they add, then ``session.commit()``; a request that fails is
rolled back at teardown, so a rejected request writes nothing. On SQLite every transaction
starts with ``BEGIN IMMEDIATE`` so that check-then-insert is as safe as on PostgreSQL.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from flask import Flask, current_app
from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of every model; constraint names follow one convention so migrations can drop them."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def one_of(column: str, values: tuple[str, ...]) -> str:
    """The SQL of a CHECK constraint that keeps ``column`` within ``values``."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class _AppBoundSession(Session):
    """A session bound to the current app's engine, so several apps (tests) can coexist."""

    def get_bind(self, *args: Any, **kwargs: Any) -> Engine | Connection:
        return current_app.extensions["db_engine"]


session: scoped_session[Session] = scoped_session(
    sessionmaker(class_=_AppBoundSession, expire_on_commit=False)
)


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout, foreign keys and BEGIN IMMEDIATE.

    SQL parameters are never put into exception messages (``hide_parameters``): a failed insert
    would otherwise log a password hash or a card's details with its traceback.
    """
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            hide_parameters=True,
        )
        _make_sqlite_transactions_immediate(engine)
        return engine
    engine = create_engine(
        url, hide_parameters=True, pool_size=pool_size, max_overflow=max_overflow
    )
    _ping_connections_left_idle(engine)
    return engine


# A pooled connection reused within this many seconds is handed out without a ping.
PING_AFTER_IDLE_SECONDS = 10.0


def _ping_connections_left_idle(engine: Engine) -> None:
    """Check a pooled connection before use only when it sat idle, instead of on every checkout
    (``pool_pre_ping``): under load a connection comes back within milliseconds, and the ping
    was one of the four round trips of an authenticated request. A connection that fails its
    ping is replaced; one that a restarted database dropped while in steady use fails that one
    request, and the pool then discards every connection of the old server.
    """

    @event.listens_for(engine, "connect")
    def _connected(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since", 0.0)
        if time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError("the pooled connection failed its ping") from exc


def _make_sqlite_transactions_immediate(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A read-only connection (read_only_connection) reads in a deferred transaction: in WAL
        # mode it takes no lock that a writer waits for.
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


_WROTE = "wrote"  # session.info key: the open transaction has flushed changes


@event.listens_for(Session, "after_flush")
def _flushed(flushed: Session, _context: Any) -> None:
    flushed.info[_WROTE] = True


_READING = "reading"  # session.info key: the open transaction was begun by begin_reading


@event.listens_for(Session, "before_flush")
def _refuse_writes_while_reading(flushing: Session, _context: Any, _instances: Any) -> None:
    if flushing.info.get(_READING):
        raise RuntimeError("a write in a transaction begun for reading only (begin_reading)")


@event.listens_for(Session, "after_transaction_end")
def _transaction_ended(ended: Session, transaction: Any) -> None:
    if transaction.parent is None:
        ended.info.pop(_WROTE, None)
        ended.info.pop(_READING, None)


def has_pending_writes() -> bool:
    """True when the session's open transaction holds changes not yet committed."""
    return bool(session.new or session.dirty or session.deleted or session.info.get(_WROTE))


def end_read_transaction() -> None:
    """End a transaction that only read, so no lock or snapshot is held across slow work (an
    HTTP call to Stripe; on SQLite every transaction holds the write lock).

    Raises when the transaction holds writes: those belong to the caller, who must commit or
    roll them back itself; a service of another module never does it for them.
    """
    if has_pending_writes():
        raise RuntimeError("uncommitted changes in the session: commit them before this call")
    session.commit()


_READ_ONLY = "civic_read_only"


@contextmanager
def read_only_connection() -> Iterator[Connection]:
    """A connection for one read outside the request's transaction. On PostgreSQL it runs in
    autocommit: no BEGIN and ROLLBACK round trips around the statement (three become one). On
    SQLite it reads in a deferred transaction, so it never takes the write lock. Authentication
    uses it; anything that writes, or reads several rows that must agree, uses ``session``."""
    connection = engine().connect()
    try:
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        else:
            connection = connection.execution_options(**{_READ_ONLY: True})
        yield connection
    finally:
        connection.close()


def begin_reading() -> None:
    """Begin the session's transaction as one that only reads, if none is open yet: on
    PostgreSQL in autocommit (no BEGIN and ROLLBACK round trips around its statements, which
    under READ COMMITTED see the same snapshots as in a transaction), on SQLite a deferred
    transaction (no write lock). Paged lists call it before their query; a request that had
    already begun its transaction keeps it. A flush in a transaction begun so raises.
    """
    if session().in_transaction():
        return
    if is_postgresql():
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    else:
        session.connection(execution_options={_READ_ONLY: True})
    session.info[_READING] = True  # a flush in it raises: it would not be atomic


def init_app(app: Flask) -> None:
    """Create the app's engine and remove the session at the end of every app context."""
    engine = make_engine(
        app.config["DATABASE_URL"],
        pool_size=app.config["DATABASE_POOL_SIZE"],
        max_overflow=app.config["DATABASE_MAX_OVERFLOW"],
    )
    app.extensions["db_engine"] = engine

    @app.teardown_appcontext
    def _remove_session(_exc: BaseException | None) -> None:
        session.remove()


def engine() -> Engine:
    """The current app's engine."""
    return current_app.extensions["db_engine"]


def is_postgresql() -> bool:
    """True when the current app runs on PostgreSQL (advisory locks, SKIP LOCKED...)."""
    return engine().dialect.name == "postgresql"


def insert(table: Any) -> Any:
    """An INSERT that can say ON CONFLICT (DO NOTHING, DO UPDATE), in the current backend's
    dialect: both PostgreSQL and SQLite speak it, each through its own construct."""
    if is_postgresql():
        return postgresql.insert(table)
    return sqlite.insert(table)
