"""``deploy local`` and a CLI local deploy: serve a local endpoint in the foreground until Ctrl-C.

A local endpoint lives as long as the process that started it, so the CLI never returns while
one runs: it prints what to paste in another shell, serves, and stops the container on Ctrl-C or
SIGTERM (a killed CLI leaves nothing either: see `OrphanGuard`).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path

from deploy.local.checkout import PACKAGE_CHECKOUT, is_checkout
from deploy.local.endpoint import DEFAULT_ENDPOINT_NAME, DUMMY_CREDENTIALS, LocalEndpoint

CONSOLE_SCRIPT = "sluice-deploy"


def cli_command() -> str:
    """How another shell runs this package's CLI with this interpreter, whatever its PATH holds.

    The installed console script when there is one (``pip install sluice-deploy``, or ``make
    install``'s editable install); else ``python -m deploy`` of this interpreter, from the
    checkout (a bare ``python`` may lack boto3, or find no ``deploy`` outside the checkout).
    """
    script = Path(sys.executable).parent / CONSOLE_SCRIPT
    if script.exists():
        on_path = shutil.which(CONSOLE_SCRIPT)
        return CONSOLE_SCRIPT if on_path and os.path.samefile(on_path, script) else shlex.quote(str(script))
    module = f"{shlex.quote(sys.executable)} -m deploy"
    return f"cd {shlex.quote(str(PACKAGE_CHECKOUT))} && {module}" if is_checkout(PACKAGE_CHECKOUT) else module


def banner(endpoint: LocalEndpoint) -> str:
    """The ready line, then exactly what to paste in another shell to use the endpoint."""
    exports = " ".join(f"{name}={value}" for name, value in DUMMY_CREDENTIALS.items())
    return (f"Endpoint {endpoint.endpoint_name!r} ready: runtime API {endpoint.runtime_url} "
            f"-> container {endpoint.container_url}\n"
            "In another shell (dummy credentials: the local endpoint checks no signature):\n"
            f"  export AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME={endpoint.runtime_url} "
            f"AWS_ENDPOINT_URL_SAGEMAKER={endpoint.runtime_url}\n"
            f"  export {exports} AWS_DEFAULT_REGION={endpoint.region}\n"
            f"  {cli_command()} invoke {shlex.quote(endpoint.endpoint_name)} --stream 'How do I make cheese?'\n"
            "Press Ctrl-C to stop.")


def run_local_endpoint(model_dir: str | os.PathLike, port: int,
                       endpoint_name: str = DEFAULT_ENDPOINT_NAME, use_docker: bool = False,
                       image: str | None = None, env: dict[str, str] | None = None,
                       announce=None, container_port: int | None = None,
                       checkout: str | os.PathLike | None = None) -> None:
    """Serve a local endpoint on ``127.0.0.1:port`` until Ctrl-C or SIGTERM (``deploy local``)."""
    endpoint = LocalEndpoint(model_dir, endpoint_name, use_docker=use_docker, image=image,
                             env=env, runtime_port=port, container_port=container_port, checkout=checkout)
    serve_in_foreground(endpoint, announce)


def serve_in_foreground(endpoint: LocalEndpoint, announce=None) -> None:
    """Start ``endpoint``, print how to use it, and serve until Ctrl-C or SIGTERM, then stop it.

    SIGTERM (``kill``, a supervisor, a test) stops it like Ctrl-C, container included: the
    container runs in its own session, so a terminal's Ctrl-C does not reach it. ``announce``
    receives the status lines (default: print, flushed so a pipe sees them at once).
    """
    announce = announce or (lambda text: print(text, flush=True))
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # raises KeyboardInterrupt
    try:
        with endpoint:
            announce(banner(endpoint))
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        announce("Stopping.")
