"""gunicorn settings for Sluice, derived from the same environment config as the app.

One worker per model copy; threads for concurrent connections (each stream holds one, and /ping
must always find a free one); no worker timeout, which would kill long streams; a graceful
shutdown inside SageMaker's 30 s SIGTERM -> SIGKILL window; logs on stdout. The worker class is
gthread's, answering in JSON and bounding slow clients (sluice/http/gunicorn_worker.py).
"""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sluice.config import SAGEMAKER_SESSIONS_PATH, Config  # noqa: E402
from sluice.serving.session_store import default_directory  # noqa: E402

_config = Config.from_environ()

# Stateful sessions: one store for every worker (a session comes back to the instance, not to the
# worker that opened it), made here in the master before the workers fork and removed at its exit.
_sessions_dir = None
if _config.stateful_sessions and not _config.sessions_path:
    _sessions_dir = tempfile.mkdtemp(prefix="sluice-sessions-", dir=default_directory())
    os.environ[SAGEMAKER_SESSIONS_PATH] = _sessions_dir


def on_exit(server):
    if _sessions_dir:
        shutil.rmtree(_sessions_dir, ignore_errors=True)


bind = [f"{_config.host}:{_config.port}"]
workers = _config.workers
worker_class = "sluice.http.gunicorn_worker.SluiceThreadWorker"
# Streams hold MAX_CONCURRENT_REQUESTS threads; health checks get 16 more, and clients still
# sending their request another 48 (each held at most the worker's receive timeout, then 408;
# a connection that sends nothing holds one for 0.1 s only: SluiceThreadWorker.handle).
# All of them start when the worker boots (SluiceThreadWorker.get_thread_pool).
HEALTH_THREADS = 16
SLOW_CLIENT_THREADS = 48
threads = _config.max_concurrent_requests + HEALTH_THREADS + SLOW_CLIENT_THREADS
timeout = 0  # never kill a worker for a long generation
graceful_timeout = 25
keepalive = 75  # SageMaker reuses connections
backlog = 2048
control_socket_disable = True  # one fixed path (~/.gunicorn/gunicorn.ctl) shared by every server on the machine
# Access lines only on request: SageMaker pings every few seconds.
_access_level = "INFO" if _config.access_log else "WARNING"
loglevel = _config.log_level
logger_class = "sluice.http.access_log.AccessLogger"  # access fields built only when written
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "plain"}},
    "root": {"level": "INFO", "handlers": ["stdout"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
        "gunicorn.access": {"level": _access_level, "handlers": ["stdout"], "propagate": False},
    },
}
