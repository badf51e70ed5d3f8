"""Fast tier: imports run one way, down the rooms (http -> dialects -> serving -> engine), with
the request model, the wire format and the text types shared below all of them.

A room that imported one above it would tie, say, the engine to Flask or to one protocol's body;
this test names the offending import instead of letting the layering erode unnoticed.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "container" / "sluice"

# What each room must not import (the rooms above it). ``text`` (a sequence's state, the
# detokenizer, stopping) and ``model`` (loading) sit below serving, beside the engine.
FORBIDDEN = {
    "request": {"http", "dialects", "serving", "wire", "engine", "text", "model"},
    "wire": {"http", "dialects", "serving", "request", "engine", "text", "model"},
    "text": {"http", "dialects", "serving", "wire", "engine"},
    "model": {"http", "dialects", "serving", "wire", "engine", "text"},
    "serving": {"http", "dialects"},
    "dialects": {"http"},
    "engine": {"http", "dialects", "serving", "wire"},
}


def room_of(path: Path) -> str | None:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else None


def imported_rooms(path: Path) -> set[str]:
    """The top-level ``sluice`` rooms a module imports (relative imports resolved)."""
    depth = len(path.relative_to(PACKAGE).parts) - 1
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            up = node.level - 1
            if up > depth:
                continue
            inside = path.relative_to(PACKAGE).parts[:depth - up]
            target = list(inside) + (node.module.split(".") if node.module else [])
            names = target[:1] or [alias.name for alias in node.names]
            rooms.update(names)
    return rooms


def test_no_room_imports_a_room_above_it():
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        room = room_of(path)
        for above in imported_rooms(path) & FORBIDDEN.get(room, set()):
            offences.append(f"{path.relative_to(PACKAGE)} ({room}) imports {above}")
    assert offences == []


def test_the_request_model_needs_neither_flask_nor_torch():
    for path in (PACKAGE / "request").rglob("*.py"):
        imports = {alias.name.split(".")[0] for node in ast.walk(ast.parse(path.read_text()))
                   if isinstance(node, ast.Import) for alias in node.names}
        imports |= {node.module.split(".")[0] for node in ast.walk(ast.parse(path.read_text()))
                    if isinstance(node, ast.ImportFrom) and not node.level and node.module}
        assert not imports & {"flask", "torch", "werkzeug", "transformers"}, path


def test_both_engines_offer_the_interface_serving_drives():
    """Serving only calls what ``engine.api.GenerationEngine`` declares; both engines have it."""
    from sluice.engine.batching import Engine
    from sluice.engine.api import GenerationEngine
    from sluice.engine.vllm_engine import VllmEngine

    wanted = {name for name in vars(GenerationEngine) if not name.startswith("_")} - {"stats"}
    assert wanted == {"submit", "cancel", "healthy", "close", "describe", "check_request"}
    for engine in (Engine, VllmEngine):
        assert all(callable(getattr(engine, name, None)) for name in wanted), engine
