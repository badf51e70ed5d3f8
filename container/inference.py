"""The inference entry point: the WSGI application gunicorn serves (``inference:app``).

Imported in each gunicorn worker after the fork, so the model (and CUDA) live only in workers.
The model loads in a background thread: the port answers at once, ``/ping`` says 503 until the
model is ready (then a ``sluice: ready`` line names the URL and a request to try), and a failed
load ends the worker with gunicorn's boot-error code, which stops the whole server (exit 3)
instead of restarting a worker that cannot load.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys

from sluice.config import Config, app_disabled
from sluice.http.app import create_app
from sluice.model.host import ModelHost
from sluice.serving.shutdown import close_before_exit

WORKER_BOOT_ERROR = 3  # gunicorn's arbiter halts the server when a worker exits with this


def _build(config: Config):
    from sluice.bootstrap import build_serving  # torch is imported here, in the loader thread
    return build_serving(config)


def ready_line(config: Config, host: str) -> str:
    """What to try first: the exact URL and a streaming curl a new user can paste."""
    url = f"http://{'127.0.0.1' if host in ('', '0.0.0.0') else host}:{config.port}"
    body = '{"inputs": "How do I make cheese?", "parameters": {"max_new_tokens": 32}}'
    return (f"sluice: ready: {url} — try: curl -N {url}/generate_stream "
            f"-H 'Content-Type: application/json' -d '{body}'")


def _exit_worker(error: BaseException) -> None:
    message = " ".join(str(error).split())  # one line, whatever the library's message spans
    print(f"sluice: error: model loading failed: {type(error).__name__}: {message}", file=sys.stderr, flush=True)
    logging.shutdown()
    os._exit(WORKER_BOOT_ERROR)


def build_app(config: Config | None = None, on_failure=_exit_worker):
    config = config or Config.from_environ()
    line = ready_line(config, config.host)
    host = ModelHost(config, _build, on_failure, on_ready=lambda: print(line, flush=True)).start()
    close_before_exit(host.close)  # the worker stops the engine's threads before it exits
    return create_app(host, config)


# `kill -USR1 <worker pid>` dumps every thread's stack to the log: the way to see a stuck request.
faulthandler.register(signal.SIGUSR1, all_threads=True)
app = build_app() if not app_disabled() else None
