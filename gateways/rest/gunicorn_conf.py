"""Gunicorn settings for msq's REST gateway (gunicorn >= 24, its native `asgi` worker).

Run the gateway with plain gunicorn::

    MSQ_BROKER=tcp://127.0.0.1:5600 \\
    gunicorn -c python:msq.gateways.rest.gunicorn_conf 'msq.gateways.rest.app:create_app()'

`msq-rest-gateway --listen HOST:PORT --workers N --broker ADDR` runs the same app with these
settings. Options given on gunicorn's command line win over this module (`--bind`,
`--workers`, ...). Read from the environment here: `MSQ_REST_LISTEN` (bind address, default
127.0.0.1:1500) and `MSQ_REST_WORKERS` (default 2); by the app: `MSQ_BROKER`,
`MSQ_REST_MAX_BODY_MB`, `MSQ_REST_HTTP_STATUS_CODES`, `MSQ_REST_TIMEOUT_S`, and the CURVE key
files `MSQ_CURVE_SECRET_KEY` and `MSQ_CURVE_SERVER_KEY` (see
`msq.gateways.rest.state.RestSettings`).

HTTPS: add `--certfile server.crt --keyfile server.key`; to require client certificates,
also `--ca-certs ca.crt --cert-reqs 2` (`ssl.CERT_REQUIRED`).

Each worker process builds the app after the fork and opens its own link to the broker at ASGI
lifespan startup. A client that disconnects cancels its request at once
(`asgi_disconnect_grace_period = 0`), which withdraws its queued instances at the broker.
Request metrics are summed over the workers through prometheus-client's multiprocess mode:
unless `PROMETHEUS_MULTIPROC_DIR` is set, a private temporary directory is made for it and
removed at exit.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from typing import Any

from msq.process import announce_ready

bind = [os.environ.get("MSQ_REST_LISTEN", "127.0.0.1:1500")]
workers = int(os.environ.get("MSQ_REST_WORKERS", "2"))
worker_class = "asgi"
asgi_lifespan = "on"
asgi_disconnect_grace_period = 0
keepalive = 5
graceful_timeout = 10
# gunicorn's control socket defaults to one path per user, shared by every instance.
control_socket_disable = True

_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_OWN_METRICS_DIR = not os.environ.get(_MULTIPROC_ENV)
if _OWN_METRICS_DIR:
    # Set before any worker imports prometheus_client (it picks its mode at import).
    os.environ[_MULTIPROC_ENV] = tempfile.mkdtemp(prefix="msq-rest-metrics-")


def on_starting(server: Any) -> None:
    """Start with no metrics left from an earlier run in the multiprocess directory."""
    for path in glob.glob(os.path.join(os.environ[_MULTIPROC_ENV], "*.db")):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def when_ready(server: Any) -> None:
    """Say on stderr that the gateway listens (the line msq's launchers and tests wait for)."""
    addresses = ", ".join(str(listener) for listener in server.LISTENERS)
    announce_ready("msq-rest-gateway", f"listening on {addresses}")


def on_exit(server: Any) -> None:
    """Remove the metrics directory this module made."""
    if _OWN_METRICS_DIR:
        shutil.rmtree(os.environ[_MULTIPROC_ENV], ignore_errors=True)
