"""`container/serve` in a shell without the serving environment: one line, exit 1, before anything.

`serve` runs on whatever ``python3`` is first on PATH; gunicorn, Flask and torch live in the
project's environment (or the image). Without it on PATH, the user must hear that at once, not a
"serving ..." line followed by Python's ``No module named gunicorn``.
"""

from __future__ import annotations

import os
import subprocess
import venv

from deploy.local import SERVE, free_port


def test_serve_without_the_serving_environment_says_so_in_one_line(tiny_model_dir, tmp_path):
    bare = tmp_path / "bare"
    venv.EnvBuilder(with_pip=False).create(bare)  # a python3 with nothing installed
    env = {"PATH": f"{bare / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin", "HF_MODEL_ID": str(tiny_model_dir),
           "SAGEMAKER_BIND_TO_PORT": str(free_port()), "HOME": str(tmp_path)}
    result = subprocess.run([str(SERVE)], env=env, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (f"sluice: error: {bare / 'bin' / 'python3'} has no gunicorn, flask, torch, transformers: "
                             "run `make install` and put .venv/bin first on PATH (as `make serve` does)\n")
