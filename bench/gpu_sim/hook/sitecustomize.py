"""Activates the simulated GPU in a server process the ``gpu-sim`` benchmark starts.

The benchmark puts this directory on the server's ``PYTHONPATH``; Python imports
``sitecustomize`` at start-up in that process and every process it spawns (vLLM's engine core).
Without ``SLUICE_GPU_SIM_STEP_MS`` in the environment it does nothing. With it, the patches of
``bench.gpu_sim.activation`` are applied to their modules as those are imported; nothing of the
production code reads these variables.
"""

import os
import sys

if os.environ.get("SLUICE_GPU_SIM_STEP_MS"):
    sys.path.append(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
    from bench.gpu_sim.activation import install

    install()
