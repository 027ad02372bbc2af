"""Where a request's time goes, in process (no server, no network client in the way).

Builds the app with the production settings of ``bench_request_overhead.py`` on a fresh
PostgreSQL database, then for bare Flask hello, ``/healthz``, ``/api/v1/auth/me`` and
``/api/v1/payments`` prints the wall and CPU time of one request through the WSGI app, and
the Python and C function calls it makes (cProfile's count: steady on a busy machine);
with ``--profile`` a pyinstrument profile of each (``--flat``: self time per function); with
``--hooks`` what each piece of core's per-request work costs ``/healthz``, measured one by one
(the request's CPU with that hook taken out, against the whole app, in alternating runs).

    .venv/bin/python bench/profile_requests.py [--profile] [--flat] [--hooks] [-n 3000]
"""

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_request_overhead import _database, _prepare, _production_env  # noqa: E402

WSGI = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3000, help="requests per endpoint")
    parser.add_argument("--profile", action="store_true", help="print a pyinstrument profile")
    parser.add_argument("--flat", action="store_true", help="profile as self time per function")
    parser.add_argument("--hooks", action="store_true", help="what each core hook costs /healthz")
    options = parser.parse_args()
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    with _database() as database_url:
        env = _production_env(database_url)
        token = _prepare(env)
        os.environ.update(env)
        from werkzeug.test import EnvironBuilder

        from app import create_app
        from bench.hello_app import app as hello

        application = create_app()
        # The access log line is still made and written (its cost counts), to /dev/null.
        handler = logging.getLogger().handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(open(os.devnull, "w"))  # noqa: SIM115
        bearer = [("Authorization", f"Bearer {token}")]
        cases: list[tuple[str, WSGI, dict[str, Any]]] = [
            ("hello (bare Flask)", hello, EnvironBuilder(path="/hello").get_environ()),
            ("GET /healthz", application, EnvironBuilder(path="/healthz").get_environ()),
            (
                "GET /api/v1/auth/me",
                application,
                EnvironBuilder(path="/api/v1/auth/me", headers=bearer).get_environ(),
            ),
            (
                "GET /api/v1/payments",
                application,
                EnvironBuilder(path="/api/v1/payments", headers=bearer).get_environ(),
            ),
        ]
        print(
            f"\n| request (in process, {options.n} each) | wall per request | CPU per request "
            "| CPU x hello | function calls per request |"
        )
        print("|---|---|---|---|---|")
        hello_cpu = 0.0
        for name, wsgi, environ in cases:
            wall, cpu = _time(wsgi, environ, options.n)
            hello_cpu = hello_cpu or cpu
            calls = _function_calls(wsgi, environ)
            print(
                f"| {name} | {wall:.0f} us | {cpu:.0f} us | {cpu / hello_cpu:.1f} | {calls:,.0f} |"
            )
        print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        if options.hooks:
            _hooks(application, cases[1][2], options.n)
        if options.profile:
            for name, wsgi, environ in cases[1:]:
                _profile(name, wsgi, environ, options.n, flat=options.flat)
        application.extensions["db_engine"].dispose()
    return 0


def _hooks(application: Any, environ: dict[str, Any], n: int) -> None:
    """CPU per ``/healthz`` with each of core's request hooks (and the security headers'
    middleware) taken out in turn, against the whole app: what each costs, one by one."""
    hooks: list[tuple[str, list[Any], Any]] = []
    for kind, table in (
        ("before", application.before_request_funcs),
        ("after", application.after_request_funcs),
        ("teardown", application.teardown_request_funcs),
    ):
        hooks += [(f"{kind} {f.__module__}.{f.__qualname__}", table[None], f) for f in table[None]]
    context = application.teardown_appcontext_funcs
    hooks += [(f"teardown_appcontext {f.__module__}.{f.__qualname__}", context, f) for f in context]
    print(f"\n| /healthz without ({n} requests, best of 5, alternating with the whole app) "
          "| CPU per request | what it costs |")  # fmt: skip
    print("|---|---|---|")
    for name, table, hook in hooks:
        index = table.index(hook)
        whole, without = [], []
        for _ in range(5):
            whole.append(_time(application, environ, n // 5, runs=1)[1])
            table.remove(hook)
            try:
                without.append(_time(application, environ, n // 5, runs=1)[1])
            finally:
                table.insert(index, hook)
        print(f"| {name} | {min(without):.0f} us | {min(whole) - min(without):.0f} us |")
    middleware = application.wsgi_app
    whole, without = [], []
    for _ in range(5):
        whole.append(_time(application, environ, n // 5, runs=1)[1])
        application.wsgi_app = middleware.app  # the security headers' middleware, unwrapped
        try:
            without.append(_time(application, environ, n // 5, runs=1)[1])
        finally:
            application.wsgi_app = middleware
    print(f"| middleware {type(middleware).__name__} | {min(without):.0f} us "
          f"| {min(whole) - min(without):.0f} us |")  # fmt: skip


def _call(wsgi: WSGI, environ: dict[str, Any]) -> str:
    status: list[str] = []
    body = wsgi(dict(environ), lambda s, _h, _e=None: status.append(s))
    b"".join(body)
    getattr(body, "close", lambda: None)()
    return status[0]


def _time(wsgi: WSGI, environ: dict[str, Any], n: int, runs: int = 5) -> tuple[float, float]:
    status = _call(wsgi, environ)
    if not status.startswith("200"):
        raise SystemExit(f"{environ['PATH_INFO']} answered {status}")
    for _ in range(200):
        _call(wsgi, environ)
    # The best of five runs of each: the machine is shared, and other processes only ever add.
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            _call(wsgi, environ)
        walls.append((time.perf_counter() - wall) / n * 1e6)
        cpus.append((time.process_time() - cpu) / n * 1e6)
    return min(walls), min(cpus)


def _function_calls(wsgi: WSGI, environ: dict[str, Any], n: int = 200) -> float:
    """Python and C function calls per request (cProfile's count): unlike time, the same on a
    busy machine as on a quiet one, so it shows what a change saves when timings are noisy."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(n):
        _call(wsgi, environ)
    profiler.disable()
    return float(pstats.Stats(profiler).total_calls) / n  # type: ignore[attr-defined]


def _profile(name: str, wsgi: WSGI, environ: dict[str, Any], n: int, *, flat: bool) -> None:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0002)
    profiler.start()
    for _ in range(n):
        _call(wsgi, environ)
    profiler.stop()
    print(f"\n=== {name}: {n} requests")
    print(profiler.output_text(unicode=False, color=False, flat=flat, show_all=False))


if __name__ == "__main__":
    raise SystemExit(main())
