"""README.md and docs/*.md say what the code does: names, commands and links, checked without a server.

What the examples answer is checked through the real server in test_readme_examples.py and the
error table in test_error_table.py; here: every server variable is documented (and nothing
documented as one is unknown to the code), every default the docs give one is its default, the
routes table lists exactly the app's routes, every header and metric named exists, every make
target and variable passed to make, `python -m deploy` line and benchmark flag shown exists,
every Python block is valid and its `deploy` imports resolve, every link lands, the README stays
short, and no page speaks of project history.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import shlex
import subprocess
from types import SimpleNamespace

import pytest

from deploy.__main__ import build_parser, main
from doc_examples import DOCS, README, REPO, cli_arguments, commands, deploy_cli_commands, python_examples
from sluice import config
from sluice.http.app import create_app

README_MAX_LINES = 250


def test_the_readme_is_short_enough_to_read():
    assert len(README.splitlines()) <= README_MAX_LINES


def test_the_index_links_every_page():
    """docs/index.md is where a reader finds a page: a page it does not link is a page nobody finds."""
    linked = set(re.findall(r"\]\(([\w-]+\.md)(?:#[\w-]*)?\)", DOCS["docs/index.md"]))
    pages = {doc.removeprefix("docs/") for doc in DOCS if doc.startswith("docs/") and doc != "docs/index.md"}
    assert pages - linked == set()


@pytest.mark.parametrize("doc", sorted(DOCS))
def test_no_page_speaks_of_project_history(doc):
    """History belongs in commit messages; the docs describe what is."""
    assert not re.findall(r"\b(?:issue|acceptance) \d+", DOCS[doc], flags=re.IGNORECASE)


def config_variables() -> set[str]:
    """The environment variables config.py reads: its constants whose value is their own name."""
    return {name for name, value in vars(config).items() if name.isupper() and value == name}


def documented_server_variables() -> set[str]:
    text = DOCS["docs/configuration.md"]
    start = text.index("## Server variables")
    section = text[start:text.index("\n## ", start + 1)]
    names = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def test_every_server_variable_is_documented_and_nothing_else_is_listed_as_one():
    assert documented_server_variables() == config_variables()


def section(doc: str, heading: str) -> str:
    """The text under ``## heading`` of a page, up to the next ``## ``."""
    text = DOCS[doc]
    start = text.index(f"## {heading}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def table_rows(text: str) -> list[list[str]]:
    """The cells of each Markdown table row whose first cell starts with a backticked name."""
    return [[cell.strip() for cell in line.split("|")[1:-1]] for line in text.splitlines() if line.startswith("| `")]


SINGLE_LITERALS = re.compile(r"`[^`\s]+`(?: / `[^`\s]+`)*")  # `8080`, or `4` / `5` / `2` beside three names


def documented_defaults() -> list[tuple[str, str, str]]:
    """(doc, variable, value) for each server variable whose default the docs write as one literal:
    the default column of configuration.md's tables (`auto`, `8080`, `false`; not prose such as
    "min(model context, 4096)"), and `NAME` (value) in any page's prose, e.g. `MAX_BEST_OF` (2)."""
    known = config_variables()
    found = []
    for cells in table_rows(section("docs/configuration.md", "Server variables")):
        names = re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0])
        if not SINGLE_LITERALS.fullmatch(cells[1]):
            continue
        values = re.findall(r"`([^`]+)`", cells[1])
        pairs = zip(names, values, strict=True) if len(values) > 1 else ((name, values[0]) for name in names)
        found.extend(("docs/configuration.md", name, value) for name, value in pairs)
    for doc, text in DOCS.items():
        for name, value in re.findall(r"`([A-Z][A-Z0-9_]+)` \((-?[0-9][0-9.]*)\)", text):
            if name in known:
                found.append((doc, name, value))
    return found


def test_the_docs_give_defaults_to_check():
    assert len(documented_defaults()) >= 20


@pytest.mark.parametrize(("doc", "name", "value"), documented_defaults(), ids=lambda v: str(v))
def test_a_documented_default_is_the_default(tmp_path, doc, name, value):
    """Setting a variable to the default the docs give it changes nothing the server resolves."""
    unset = {config.HF_MODEL_ID: str(tmp_path)}
    assert config.Config.from_environ({**unset, name: value}) == config.Config.from_environ(unset), \
        f"{doc}: {name} is documented to default to {value}"


def documented_routes() -> set[tuple[str, str]]:
    """(method, path) of each `METHOD /path` in http-api.md's routes table."""
    return {(method, path) for cells in table_rows(section("docs/http-api.md", "Routes"))
            for method, path in re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`]*)`", cells[0])}


def app_routes() -> set[tuple[str, str]]:
    """The app's routes as the docs write them (`/adapters/<name>`, not werkzeug's `<path:name>`)."""
    app = create_app(SimpleNamespace(service=None, error=None), config.Config(model_id="m"))
    return {(method, re.sub(r"<\w+:(\w+)>", r"<\1>", rule.rule)) for rule in app.url_map.iter_rules()
            if rule.endpoint != "static" for method in rule.methods - {"HEAD", "OPTIONS"}}


def test_the_routes_table_lists_exactly_the_apps_routes():
    documented, served = documented_routes(), app_routes()
    assert documented - served == set(), "documented, not served"
    assert served - documented == set(), "served, not documented"


def documented_headers() -> set[str]:
    """SageMaker's `X-Amzn-SageMaker-*` headers and the `x-*` ones the docs name (not media types
    such as `application/x-ndjson`)."""
    pattern = re.compile(r"(?<![\w/-])((?:X-Amzn-SageMaker|x)-[A-Za-z][A-Za-z-]*[A-Za-z])\b")
    return {name for text in DOCS.values() for name in pattern.findall(text)}


def test_every_header_the_docs_name_exists_in_the_code():
    sources = "".join(path.read_text(encoding="utf-8") for folder in ("container", "deploy")
                      for path in (REPO / folder).rglob("*.py")).lower()
    names = documented_headers()
    assert "x-sluice-cache" in names
    assert {name for name in names if name.lower() not in sources} == set()


def documented_metrics() -> set[str]:
    """Every `tgi_*` and `sluice_*` metric the docs name, `sluice_x_{a,b}` spelled out."""
    names = set()
    for text in DOCS.values():
        for head, options in re.findall(r"`((?:tgi|sluice)_[a-z_]*)(?:\{([a-z_,]+)\})?", text):
            if options:
                names.update(f"{head}{option}" for option in options.split(","))
            else:
                names.add(head)
    return names


def test_every_metric_the_docs_name_is_written_by_the_server():
    source = (REPO / "container" / "sluice" / "serving" / "metrics.py").read_text(encoding="utf-8")
    names = documented_metrics()
    assert "tgi_request_count" in names and "sluice_prefix_cache_capacity_tokens" in names
    assert {name for name in names if f'"{name}"' not in source} == set()


def sluice_names_in_docs() -> set[str]:
    return {name for text in DOCS.values() for name in re.findall(r"\bSLUICE_[A-Z0-9_]+\b", text)}


def tracked_sources() -> str:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    paths = [REPO / name for name in listed.decode().split("\0") if name]
    return "".join(path.read_text(encoding="utf-8", errors="replace") for path in paths
                   if path.is_file() and path.suffix != ".md")


def test_every_sluice_variable_the_docs_name_exists_in_the_code():
    sources = tracked_sources()
    assert {name for name in sluice_names_in_docs() if name not in sources} == set()


def makefile_targets() -> set[str]:
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][a-z0-9-]*):", text, flags=re.MULTILINE))


def test_every_make_target_the_docs_name_exists():
    """`make x` in backticks, and command lines starting with `make x`."""
    pattern = re.compile(r"(?:^|`)make ([a-z][a-z0-9-]*)", flags=re.MULTILINE)
    named = {target for text in DOCS.values() for target in pattern.findall(text)}
    assert named, "the docs name no make target"
    assert named - makefile_targets() == set()


def make_variables_in_docs() -> set[str]:
    """`make serve [SIZE=small] [PORT=8080]`, `make bench SCENARIOS=gpu-sim`: the VAR= given to make."""
    pattern = re.compile(r"(?:^|`)make [a-z][a-z0-9-]*((?: \[?[A-Z_]+=[^\]`\s]*\]?)+)", flags=re.MULTILINE)
    return {name for text in DOCS.values() for arguments in pattern.findall(text)
            for name in re.findall(r"([A-Z_]+)=", arguments)}


def test_every_make_variable_the_docs_pass_is_read_by_the_makefile():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    named = make_variables_in_docs()
    assert {"SIZE", "PORT", "MODEL_DIR"} <= named
    assert {name for name in named if f"$({name})" not in makefile} == set()


@pytest.mark.parametrize("command", deploy_cli_commands(), ids=str)
def test_every_deploy_command_line_parses(command):
    """Subcommands, flags and value types exist as shown (placeholders are plain strings)."""
    arguments = cli_arguments(command)
    try:
        build_parser().parse_args(arguments)
    except SystemExit as stop:
        pytest.fail(f"{command}: argparse exited {stop.code}")


@pytest.mark.parametrize("command", [c for c in deploy_cli_commands() if cli_arguments(c)[0] == "models"], ids=str)
def test_models_command_lists_the_catalog(command, capsys):
    assert main(cli_arguments(command)) == 0
    assert capsys.readouterr().out.split()


@pytest.mark.parametrize("example", python_examples(), ids=str)
def test_every_python_block_is_valid_and_its_deploy_imports_resolve(example):
    tree = ast.parse(example.code)
    imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
               and (getattr(node, "module", None) or node.names[0].name).split(".")[0] == "deploy"]
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(ast.Module(body=imports, type_ignores=[]), str(example), "exec"), {})


def bench_commands() -> list:
    return [c for c in commands() if "bench/run.py" in c.line]


@pytest.mark.parametrize("command", bench_commands(), ids=str)
def test_benchmark_command_names_existing_flags_contenders_and_scenarios(command):
    from bench import contenders
    from bench.run import ALL_SCENARIOS

    source = (REPO / "bench" / "run.py").read_text(encoding="utf-8")
    words = shlex.split(command.line)
    for flag in (w for w in words if w.startswith("--")):
        assert f'"{flag}"' in source, f"{command}: bench/run.py has no {flag}"
    for flag, known in (("--contenders", contenders.CONTENDERS), ("--scenarios", ALL_SCENARIOS)):
        if flag in words:
            assert set(words[words.index(flag) + 1].split(",")) <= set(known), command


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)}


@pytest.mark.parametrize("doc", sorted(DOCS))
def test_every_link_lands_on_a_file_and_heading(doc):
    text = re.sub(r"```.*?```", "", DOCS[doc], flags=re.DOTALL)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        resolved = (REPO / doc).parent / path if path else REPO / doc
        assert resolved.exists(), f"{doc}: link to {target}"
        if anchor:
            assert anchor in anchors(resolved.read_text(encoding="utf-8")), f"{doc}: link to {target}"

