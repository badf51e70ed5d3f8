"""Patch modules of a server process as they are imported (see ``hook/sitecustomize``).

A meta-path finder wraps the loader of each module named in the patch tables: the real module
is executed, then its patch runs, before anything else can use it. Which tables apply: vLLM's
model runner and CPU platform always (they are only imported where vLLM runs), Sluice's engine
registry only with ``SLUICE_GPU_SIM_STANDIN=1`` (the cost-free stand-in engine).
"""

from __future__ import annotations

import importlib.abc
import os
import sys

STANDIN = "SLUICE_GPU_SIM_STANDIN"


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, real, patch):
        self.real, self.patch = real, patch

    def create_module(self, spec):
        return self.real.create_module(spec)

    def exec_module(self, module):
        self.real.exec_module(module)
        self.patch(module)


class PatchOnImport(importlib.abc.MetaPathFinder):
    def __init__(self, patches: dict):
        self.patches = patches

    def find_spec(self, name, path, target=None):
        patch = self.patches.get(name)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchingLoader(spec.loader, patch)
                return spec
        return None


def _lazy(module_name: str, function: str):
    """A patch function imported only when its target module is (keeps start-up imports small)."""
    def patch(module):
        __import__(module_name)
        getattr(sys.modules[module_name], function)(module)
    return patch


def install() -> None:
    patches = {"vllm.v1.worker.gpu_model_runner": _lazy("bench.gpu_sim.vllm_hook", "patch_model_runner"),
               "vllm.platforms.cpu": _lazy("bench.gpu_sim.vllm_hook", "patch_cpu_platform")}
    if os.environ.get(STANDIN) == "1":
        patches["sluice.engines.registry"] = _lazy("bench.gpu_sim.standin", "patch_registry")
    sys.meta_path.insert(0, PatchOnImport(patches))
