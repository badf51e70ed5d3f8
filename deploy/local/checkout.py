"""Where a local endpoint's container comes from: a Sluice checkout, run as a process.

The client distribution (``pip install sluice-deploy``) carries no model server: torch, flask and
gunicorn would make it heavy. A process-mode local endpoint runs ``container/serve`` from a Sluice
checkout with that checkout's serving environment (``make install`` -> ``.venv``); docker mode
needs only an image. Run from a checkout (tests, notebooks, ``make local``) the checkout is the one
this package lives in; an installed client is pointed at one with ``$SLUICE_CHECKOUT`` or
``checkout=``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from deploy.errors import MissingConfigurationError

ENV_CHECKOUT = "SLUICE_CHECKOUT"
SERVE_IN_CHECKOUT = Path("container") / "serve"
SERVING_VENV = ".venv"  # what `make install` builds in a checkout
# What the container imports before anything else; an interpreter without them cannot serve.
SERVING_MODULES = ("gunicorn", "flask", "torch")
# The checkout this package lives in when it is imported from one (it is not when installed).
PACKAGE_CHECKOUT = Path(__file__).resolve().parent.parent.parent
HOW_TO_POINT = (f"point {ENV_CHECKOUT} (or checkout=, --checkout) at a Sluice checkout where `make install` "
                "has run, or run an image instead (use_docker=True with image=, or --docker --image-uri)")


def is_checkout(path: Path) -> bool:
    return (path / SERVE_IN_CHECKOUT).is_file()


def find_checkout(checkout: str | os.PathLike | None = None) -> Path:
    """``checkout``, else ``$SLUICE_CHECKOUT``, else the checkout this package runs from."""
    named = checkout or os.environ.get(ENV_CHECKOUT)
    if named:
        path = Path(named).expanduser().resolve()
        if not is_checkout(path):
            raise MissingConfigurationError(f"{path} is not a Sluice checkout (it has no {SERVE_IN_CHECKOUT}): "
                                            + HOW_TO_POINT)
        return path
    if is_checkout(PACKAGE_CHECKOUT):
        return PACKAGE_CHECKOUT
    raise MissingConfigurationError("a local endpoint runs the Sluice container, which this installed client "
                                    "does not include: " + HOW_TO_POINT)


def serving_bin_dir(checkout: Path) -> Path:
    """The environment that runs the container: this interpreter's when it has the serving stack
    (a checkout's ``.venv``, CI's interpreter), else the checkout's ``.venv``."""
    if all(importlib.util.find_spec(name) is not None for name in SERVING_MODULES):
        return Path(sys.executable).parent
    venv_bin = checkout / SERVING_VENV / "bin"
    if (venv_bin / "python").exists():
        return venv_bin
    raise MissingConfigurationError(
        f"this Python ({sys.executable}) cannot run the container (it lacks {', '.join(SERVING_MODULES)}) and "
        f"{checkout} has no {SERVING_VENV}: run `make install` there")
