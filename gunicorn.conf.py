"""gunicorn settings for production; gunicorn reads this file when started from the repository
root: ``gunicorn`` alone serves ``app:create_app()`` with them. Each can be overridden from the
environment; the README's "Deploying" section has the measurements behind them.

Under gunicorn an unset ``APP_ENV`` means production: the app refuses to start with the
development secrets (see ``core.config.resolve_app_env``).
"""

import os

wsgi_app = "app:create_app()"
bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# One sync worker per core: on 2 cores this gave the best throughput and by far the best p99
# (bench/bench_request_overhead.py); 4 workers or 2 x 4 threads did no better, and threads
# made p99 at saturation 10 to 50 times worse (the GIL). A worker serves one request at a time,
# so it uses one database connection at a time.
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 2))
# Threads (gthread) let a worker serve others while one request waits on Stripe; set
# GUNICORN_THREADS=4 where many requests call Stripe (each thread may hold a connection).
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
worker_class = "gthread" if threads > 1 else "sync"
# A gthread worker accepts every connection it can: with persistent connections (a balancer's
# pool, wrk) one worker ended up with all of them while the other idled (measured: 3.76 s of CPU
# against 0.05 s). Room for two connections per thread keeps them spread over the workers.
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", 2 * threads))
keepalive = 5  # seconds an idle client connection is kept (gthread only)
timeout = 30  # a worker silent this long is killed and replaced
graceful_timeout = 30
accesslog = None  # the app writes one JSON line per request itself
errorlog = "-"
