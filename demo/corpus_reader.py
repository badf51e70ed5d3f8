"""Reads the shipped demo corpus (demo/corpus/) and fingerprints it for the build stamp."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
_SOURCE_SUFFIXES = (".txt", ".jsonl")


def _source_files(corpus_dir: Path) -> list[Path]:
    # Sorted so the training order, and therefore the weights, never depend on directory order.
    return sorted(p for p in corpus_dir.iterdir() if p.suffix in _SOURCE_SUFFIXES)


def read_paragraphs(corpus_dir: Path = CORPUS_DIR) -> list[str]:
    """Every prose paragraph (blank-line separated) of every .txt file, in a fixed order."""
    paragraphs: list[str] = []
    for path in _source_files(corpus_dir):
        if path.suffix == ".txt":
            text = path.read_text(encoding="utf-8")
            paragraphs.extend(p.strip() for p in text.split("\n\n") if p.strip())
    return paragraphs


def read_dialogues(corpus_dir: Path = CORPUS_DIR) -> list[list[dict[str, str]]]:
    """Every chat conversation of every .jsonl file, as lists of {"role", "content"} messages."""
    dialogues: list[list[dict[str, str]]] = []
    for path in _source_files(corpus_dir):
        if path.suffix == ".jsonl":
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    dialogues.append(json.loads(line)["messages"])
    return dialogues


def corpus_sha256(corpus_dir: Path = CORPUS_DIR) -> str:
    """Hash of file names and contents: any edit to the corpus invalidates a built model."""
    digest = hashlib.sha256()
    for path in _source_files(corpus_dir):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()
