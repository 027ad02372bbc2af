"""gunicorn settings for production; gunicorn reads this file when started from the repository
root: ``gunicorn`` alone serves ``app:create_app()`` with them. Each can be overridden from the
environment (see the README's "Deploying" section for how they were chosen).

Under gunicorn an unset ``APP_ENV`` means production: the app refuses to start with the
development secrets (see ``core.config.resolve_app_env``).
"""

import os

wsgi_app = "app:create_app()"
bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# Processes: one per core. Threads: a worker serves that many requests at once while others
# wait on PostgreSQL or Stripe; each needs a database connection (DATABASE_POOL_SIZE).
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 2))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread" if threads > 1 else "sync"
# A gthread worker accepts every connection it can: with persistent connections (a balancer's
# pool, wrk) one worker ended up with all of them while the other idled (measured: 3.76 s of CPU
# against 0.05 s). Room for two connections per thread keeps them spread over the workers.
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", 2 * threads))
keepalive = 5  # seconds a client's idle connection is kept (gthread); behind a balancer
timeout = 30  # a worker silent this long is killed and replaced
graceful_timeout = 30
accesslog = None  # the app writes one JSON line per request itself
errorlog = "-"
