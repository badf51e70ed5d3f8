"""Imports run one way, down the rooms (http -> protocols -> serving -> engines), with the request
model, the wire format and the text types shared below all of them, and no import circle at all.

A room that imported one above it would tie, say, an engine to Flask or to one protocol's body;
an engine folder that imported another would make the engines one room again; a circle makes
import order matter. These tests name the offending import instead of letting the layering erode.
Every ``import`` counts, including those inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "container" / "sluice"


def module_name(path: Path) -> str:
    parts = ("sluice",) + path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def import_nodes(source: str):
    return [node for node in ast.walk(ast.parse(source)) if isinstance(node, (ast.Import, ast.ImportFrom))]


def imported_modules(source: str, me: str, is_package: bool = False) -> set[str]:
    """The ``sluice`` modules that module ``me`` imports, relative imports resolved;
    ``from pkg import mod`` names the submodule ``pkg.mod``, ``from mod import name`` names ``mod``."""
    package = me if is_package else me.rpartition(".")[0]
    found = set()
    for node in import_nodes(source):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "sluice")
            continue
        if node.level:
            base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
            target = ".".join(base + (node.module.split(".") if node.module else []))
        elif node.module and node.module.split(".")[0] == "sluice":
            target = node.module
        else:
            continue
        for alias in node.names:
            found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in MODULES else target)
    return found


GRAPH = {name: imported_modules(path.read_text(), name, path.name == "__init__.py") for name, path in MODULES.items()}


def room(module: str) -> str:
    """The top-level room (``engines``, ``http``) or root module (``config``, ``bootstrap``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "sluice"


# What each room must not import (the rooms above it). ``text`` (a sequence's text and stop rules)
# and ``model`` (loading, model facts) sit below serving, beside the engines; ``config`` and
# ``errors`` sit under everything; ``bootstrap`` wires an engine to serving and sits above both.
ALL = {"sluice", "errors", "config", "request", "wire", "text", "model", "engines", "serving", "protocols", "http",
       "bootstrap"}
FORBIDDEN = {
    "sluice": ALL - {"sluice"},
    "errors": ALL - {"errors"},
    "config": ALL - {"config", "errors"},
    "request": ALL - {"request", "errors"},
    "wire": ALL - {"wire", "errors"},
    "text": {"http", "protocols", "serving", "wire", "engines", "model", "bootstrap"},
    "model": {"http", "protocols", "serving", "wire", "engines", "text", "bootstrap"},
    "engines": {"http", "protocols", "serving", "wire", "bootstrap"},
    "serving": {"http", "protocols", "bootstrap"},
    "protocols": {"http", "engines", "model", "bootstrap"},
    "http": {"engines", "bootstrap"},
    "bootstrap": {"http", "protocols"},
}
ENGINE_FOLDERS = {"native", "vllm"}


def test_every_module_belongs_to_a_room_with_rules():
    assert {room(module) for module in MODULES} == set(FORBIDDEN)


def test_no_room_imports_a_room_above_it():
    offences = [f"{module} ({room(module)}) imports {target}"
                for module, targets in GRAPH.items() for target in sorted(targets)
                if room(target) in FORBIDDEN[room(module)]]
    assert offences == []


def engine_part(module: str) -> str | None:
    """``base``, ``registry``, ``native``, ``vllm``... for a module of ``sluice.engines``."""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "engines" else None


def test_engine_folders_never_import_each_other_and_the_rest_sees_only_the_contract():
    """``native`` and ``vllm`` import only ``base`` of the engines; ``base`` imports no engine;
    outside ``engines``, only the registry reaches an engine folder (serving sees ``base``)."""
    offences = []
    for module, targets in GRAPH.items():
        mine = engine_part(module)
        for target in targets:
            theirs = engine_part(target)
            if theirs is None or theirs == mine:
                continue
            if mine in ENGINE_FOLDERS | {"base"} and theirs != "base":
                offences.append(f"{module} imports {target}")
            if mine is None and theirs in ENGINE_FOLDERS:
                offences.append(f"{module} imports {target} (only engines.registry chooses an engine)")
    assert offences == []


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (or one importing itself): Tarjan."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_anywhere_in_the_package():
    assert cycles(GRAPH) == []


def test_the_circle_check_sees_a_circle_closed_inside_a_function():
    """The check above is only as good as this: a circle closed by an import inside a function
    (as ``bootstrap`` and the vLLM engine's wiring once had) is found."""
    wiring = "def build():\n    from ...bootstrap import KV_MEMORY_FRACTION\n"
    graph = {"sluice.bootstrap": {"sluice.engines.vllm.build"},
             "sluice.engines.vllm.build": imported_modules(wiring, "sluice.engines.vllm.build")}
    assert graph["sluice.engines.vllm.build"] == {"sluice.bootstrap"}
    assert cycles(graph) == [["sluice.bootstrap", "sluice.engines.vllm.build"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def third_party_imports(path: Path, module_level_only: bool = False) -> set[str]:
    """Top-level names of what a file imports from outside the package (inside functions too,
    unless ``module_level_only``)."""
    tree = ast.parse(path.read_text())
    nodes = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    if module_level_only:
        inside = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                  for n in ast.walk(f)}
        nodes = [node for node in nodes if id(node) not in inside]
    names = {alias.name.split(".")[0] for node in nodes if isinstance(node, ast.Import) for alias in node.names}
    return names | {node.module.split(".")[0] for node in nodes
                    if isinstance(node, ast.ImportFrom) and not node.level and node.module}


def test_the_request_model_and_the_engine_contract_need_neither_flask_nor_torch():
    for path in [*(PACKAGE / "request").rglob("*.py"), *(PACKAGE / "engines" / "base").rglob("*.py")]:
        assert not third_party_imports(path) & {"flask", "torch", "werkzeug", "transformers", "vllm"}, path


# Subclasses of vLLM's own classes, which vLLM imports by name from its config (in its engine-core
# process); only the vLLM engine's build names them.
VLLM_LOADED = {"sluice.engines.vllm.core_scheduler"}


def test_vllm_is_imported_only_inside_functions_of_its_own_engine_folder():
    """Importing any module of the package never imports vLLM: only the vLLM engine's functions
    do, once that engine is chosen (and vLLM itself, for the modules it loads by name)."""
    for path in PACKAGE.rglob("*.py"):
        if module_name(path) in VLLM_LOADED:
            continue
        assert "vllm" not in third_party_imports(path, module_level_only=True), path
        if engine_part(module_name(path)) not in ("vllm", "registry"):
            assert "vllm" not in third_party_imports(path), path


def test_every_engine_name_is_a_folder_with_a_build_and_a_config_choice():
    """Adding an engine is its folder (with ``build.build``) and its line in the registry; the
    environment's choices follow the registry."""
    from sluice.config import ENGINES as CHOICES
    from sluice.engines.registry import ENGINES

    assert set(CHOICES) == {"auto"} | set(ENGINES)
    assert set(ENGINES.values()) == ENGINE_FOLDERS
    for folder in ENGINES.values():
        builds = [node.name for node in ast.parse((PACKAGE / "engines" / folder / "build.py").read_text()).body
                  if isinstance(node, ast.FunctionDef)]
        assert "build" in builds, folder


def test_both_engines_offer_the_interface_serving_drives():
    """Serving only calls what ``engines.base.GenerationEngine`` declares; both engines have it."""
    from sluice.engines.base import GenerationEngine
    from sluice.engines.native.engine import NativeEngine
    from sluice.engines.vllm.engine import VllmEngine

    properties = {"stats", "steps_on_this_cpu"}
    wanted = {name for name in vars(GenerationEngine) if not name.startswith("_")} - properties
    assert wanted == {"submit", "deliver_to", "cancel", "release", "healthy", "close", "describe", "check_request",
                      "add_adapter", "remove_adapter", "adapter_loaded", "end_session"}
    for engine in (NativeEngine, VllmEngine):
        assert all(callable(getattr(engine, name, None)) for name in wanted), engine
        assert isinstance(getattr(engine, "steps_on_this_cpu", None), property), engine
