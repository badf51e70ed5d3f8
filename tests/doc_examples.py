"""The examples of README.md and docs/*.md, read out of the Markdown for the tests that run them.

Conventions the docs follow so that their examples can be run as written:
- a ```bash block holds commands; continuation lines (`\\`) are joined;
- a ```json or ```text block right after a ```bash block that holds one curl command is that
  command's answer (a JSON body, or stream events): the tests compare what the server answers
  with it, key by key (keys left out of the docs are not compared) and log-probabilities to
  within 0.05 (they differ between bf16 and float32 machines);
- examples talk to `make serve` at localhost:8080, to `make local`'s runtime API at
  http://127.0.0.1:8081 (endpoint `sluice-local`, or the placeholder `ENDPOINT`), and name the
  demo model directory `models/tiny`; the tests swap in their own servers and directories;
- the LoRA adapter examples name `make adapter`'s `$PWD/models/adapters/cheese`, registered as
  `cheese`; the tests build their own and register it, or not, as each example expects.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC_PATHS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
DOCS = {path.relative_to(REPO).as_posix(): path.read_text(encoding="utf-8") for path in DOC_PATHS}
README = DOCS["README.md"]

SERVER_HOST = "localhost:8080"  # `make serve`
RUNTIME_URL = "http://127.0.0.1:8081"  # `make local`
ENDPOINT_NAMES = ("sluice-local", "ENDPOINT")
MODEL_DIR = "models/tiny"
DOC_ADAPTER, DOC_ADAPTER_DIR = "cheese", "$PWD/models/adapters/cheese"  # `make adapter`
LOG_PROB_TOLERANCE = 0.05

_BASH_WITH_OUTPUT = re.compile(r"```bash\n(.*?)```\n(?:```(json|text)\n(.*?)```)?", re.DOTALL)


@dataclass(frozen=True)
class Command:
    doc: str
    line: str
    output: tuple[str, str] | None  # (json|text, the answer shown)

    def __str__(self) -> str:
        return f"{self.doc}: {self.line}"


def code_blocks(language: str, text: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def commands() -> list[Command]:
    """Every command line of every ```bash block, with the answer block shown after it, if any."""
    found = []
    for doc, text in DOCS.items():
        for block, language, answer in _BASH_WITH_OUTPUT.findall(text):
            lines = [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]
            output = (language, answer) if language else None
            found.extend(Command(doc, line, output) for line in lines)
    return found


def curl_commands() -> list[Command]:
    return [c for c in commands() if c.line.startswith("curl ") and SERVER_HOST in c.line]


CLI_PREFIXES = ("python -m deploy ", "sluice-deploy ")  # the module, and the client's console script


def deploy_cli_commands() -> list[Command]:
    return [c for c in commands() if c.line.startswith(CLI_PREFIXES)]


def cli_arguments(command: Command) -> list[str]:
    """The arguments after `python -m deploy` or `sluice-deploy`, comments dropped."""
    words = shlex.split(command.line, comments=True)
    return words[3:] if words[0] == "python" else words[1:]


@dataclass(frozen=True)
class PythonExample:
    doc: str
    index: int  # the n-th python block of its doc
    code: str

    def __str__(self) -> str:
        return f"{self.doc}#python-{self.index}"


def python_examples() -> list[PythonExample]:
    """Every ```python block, except README's headline (its own test runs that one verbatim)."""
    examples = []
    for doc, text in DOCS.items():
        for index, code in enumerate(code_blocks("python", text)):
            if doc == "README.md" and index == 0:
                continue
            examples.append(PythonExample(doc, index, code))
    return examples


def stream_events(text: str) -> list:
    """The events of an SSE or NDJSON answer: JSON values, or the string "[DONE]"."""
    events = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(":"):
            continue
        payload = line[len("data:"):].strip() if line.startswith("data:") else line
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def differences(shown, actual, where: str = "$") -> list[str]:
    """Where ``actual`` differs from what the docs show; keys the docs leave out are not compared."""
    if isinstance(shown, dict):
        if not isinstance(actual, dict):
            return [f"{where}: shown an object, got {actual!r}"]
        return [d for key, value in shown.items()
                for d in (differences(value, actual[key], f"{where}.{key}") if key in actual
                          else [f"{where}.{key}: missing"])]
    if isinstance(shown, list):
        if not isinstance(actual, list) or len(actual) != len(shown):
            return [f"{where}: shown {len(shown)} items, got {actual!r}"]
        return [d for i, (s, a) in enumerate(zip(shown, actual, strict=True))
                for d in differences(s, a, f"{where}[{i}]")]
    if isinstance(shown, float) and isinstance(actual, (int, float)) and not isinstance(actual, bool):
        return [] if abs(shown - actual) <= LOG_PROB_TOLERANCE else [f"{where}: shown {shown}, got {actual}"]
    return [] if shown == actual else [f"{where}: shown {shown!r}, got {actual!r}"]
