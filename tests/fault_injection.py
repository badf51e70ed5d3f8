"""A fault injected into the real server from outside the code under test.

Some failures no client request can cause (a validated request never breaks sampling; nothing a
client sends stops the engine's loop), yet what the server then does is behaviour a client
notices. A test writes ``poisoning_sitecustomize(module, poison)`` as ``sitecustomize.py`` into a
directory on the server's PYTHONPATH: once ``module`` is imported in the server's processes,
``poison`` (the source of ``def _poison(module): ...``) patches it. Everything else is the
production server.
"""

from __future__ import annotations

import textwrap

_IMPORT_HOOK = textwrap.dedent("""
    class _Hook(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != MODULE:
                return None
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            execute = spec.loader.exec_module

            def exec_module(module):
                execute(module)
                _poison(module)

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, _Hook())
""")


def poisoning_sitecustomize(module: str, poison: str) -> str:
    """The ``sitecustomize.py`` source that runs ``poison``'s ``_poison`` on ``module`` (a dotted
    name) as it is imported."""
    return ("import importlib.abc, importlib.machinery, sys\n\n" + textwrap.dedent(poison).strip("\n")
            + f"\n\nMODULE = {module!r}\n" + _IMPORT_HOOK)
