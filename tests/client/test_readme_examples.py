"""The examples of README.md and docs/*.md do what the docs say, run against `make serve`'s trained tiny model.

The commands and code are read out of the Markdown (see doc_examples.py for the conventions)
and run as written, with only the host, endpoint name and model directory replaced: every curl
command prints an answer, or exactly the answer shown after it; every Python block that talks
to a local server prints an answer; every `python -m deploy invoke` line prints an answer
through a local endpoint and the real boto3 client. If someone edits an example into one the
demo model cannot answer, or the server changes what the docs show, this fails.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from deploy.local import LocalEndpoint
from deploy.stream import TokenIterator
from doc_examples import (
    DOC_ADAPTER,
    DOC_ADAPTER_DIR,
    README,
    REPO,
    RUNTIME_URL,
    SERVER_HOST,
    cli_arguments,
    commands,
    curl_commands,
    deploy_cli_commands,
    differences,
    python_examples,
    stream_events,
)

WORD = re.compile(r"[^\W\d_]{2,}")  # two letters in a row, any script (CJK included)


def assert_sentence(text: str, example: str) -> None:
    assert text and WORD.search(text) and len(text.strip()) >= 8, f"{example} printed {text!r}"


def text_of_curl_output(stdout: bytes) -> str:
    """The answer in what curl printed: a token stream, or a JSON body (TGI, chat, a tool call)."""
    try:
        body = json.loads(stdout)
    except ValueError:
        return "".join(TokenIterator([stdout]))
    item = body[0] if isinstance(body, list) else body
    if "choices" in item:
        choice = item["choices"][0]
        if "message" not in choice:
            return choice["text"]
        return choice["message"]["content"] or json.dumps(choice["message"].get("tool_calls"))
    return item["generated_text"]


@pytest.fixture(scope="module")
def trained_server(trained_tiny_model_dir):
    from deploy.local import ContainerProcess

    # DTYPE=auto, as `make serve` runs it (bf16 on a CPU with native bf16): the quotes must be
    # what a user of the docs sees, not what the float32-pinned suite would print. Stateful
    # sessions on, for the HTTP API's session example.
    env = {"RESPONSE_CACHE_SIZE": "0", "DTYPE": "auto", "SAGEMAKER_ENABLE_STATEFUL_SESSIONS": "true"}
    with ContainerProcess(trained_tiny_model_dir, env=env) as process:
        yield process


@pytest.fixture(scope="module")
def doc_adapter(trained_tiny_model_dir) -> Path:
    """What `make adapter` builds: the demo model's cheese adapter."""
    from demo.build_adapter import build_adapter
    return build_adapter(trained_tiny_model_dir, trained_tiny_model_dir.parent / "adapters" / "tiny" / DOC_ADAPTER,
                         style=DOC_ADAPTER)


def arrange_adapter(server, line: str, adapter_dir: Path) -> str:
    """An adapter example runs in the state docs/adapters.md describes: registering finds the
    name free, the others find the adapter registered; the directory is the test's own."""
    names_it = ("/adapters", f"Adapter-Identifier: {DOC_ADAPTER}", f'"adapter_id": "{DOC_ADAPTER}"',
                f'"model": "{DOC_ADAPTER}"')
    if not any(name in line for name in names_it):
        return line
    listed = requests.get(server.url + "/adapters", timeout=10).json()["adapters"]
    registered = any(a["name"] == DOC_ADAPTER for a in listed)
    registering = "-X POST" in line
    if registering and registered:
        requests.delete(f"{server.url}/adapters/{DOC_ADAPTER}", timeout=10)
    if not registering and not registered:
        requests.post(server.url + "/adapters", json={"name": DOC_ADAPTER, "src": str(adapter_dir)}, timeout=60)
    return line.replace(DOC_ADAPTER_DIR, str(adapter_dir))


@pytest.fixture(scope="module")
def local_endpoint(trained_tiny_model_dir):
    # The docs' own endpoint name (`make local`'s), so `sluice-local` lines run unchanged.
    with LocalEndpoint(trained_tiny_model_dir) as endpoint:
        yield endpoint


def test_readme_has_the_examples_this_file_runs():
    readme_curls = [c.line for c in curl_commands() if c.doc == "README.md"]
    assert any('"stream": true' in c and '"inputs"' in c for c in readme_curls)
    assert any('"messages"' in c for c in readme_curls)
    readme_python = [e.code for e in python_examples() if e.doc == "README.md"]
    assert any(f"http://{SERVER_HOST}" in code and "TokenIterator(" in code for code in readme_python)
    assert any(RUNTIME_URL in code and "boto3" in code for code in readme_python)
    assert any(c.doc == "README.md" and cli_arguments(c)[0] == "invoke" for c in deploy_cli_commands())


def test_an_answer_block_belongs_to_one_curl_command():
    shown = [c for c in commands() if c.output]
    assert shown, "the docs show no answer of a command"
    for command in shown:
        assert command.line.startswith("curl "), f"{command}: only curl commands' answers are checked"
        siblings = [c for c in shown if c.output is command.output]
        assert siblings == [command], f"{command}: an answer block after a bash block with several commands"


@pytest.mark.parametrize("command", curl_commands(), ids=str)
def test_curl_example_prints_an_answer_or_the_answer_shown(trained_server, doc_adapter, command):
    local = arrange_adapter(trained_server, command.line, doc_adapter)
    local = local.replace(SERVER_HOST, trained_server.url.removeprefix("http://"))
    done = subprocess.run(["bash", "-c", local + " --silent --show-error"], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    if command.output is None:
        assert_sentence(text_of_curl_output(done.stdout), str(command))
        return
    language, shown = command.output
    if language == "json":
        found = differences(json.loads(shown), json.loads(done.stdout))
    else:
        found = differences(stream_events(shown), stream_events(done.stdout.decode()))
    assert not found, f"{command}\nanswered {done.stdout.decode()}\n" + "\n".join(found)


def demo_model_quotes() -> tuple[str, dict[int, str]]:
    """The answers the README quotes for "How do I make cheese?": greedy, and sampled by seed."""
    start = README.index("The demo model is tiny")
    paragraph = " ".join(README[start:README.index("\n\n", start)].split())
    greedy = re.search(r'stops \("([^"]+)"\)', paragraph).group(1)
    return greedy, {int(seed): text for seed, text in re.findall(r'seed (\d+): "([^"]+)"', paragraph)}


def test_readme_quotes_what_the_demo_model_answers(trained_server):
    greedy, sampled = demo_model_quotes()
    assert sampled, "the README quotes no sampled answer"
    prompt = "How do I make cheese?"
    body = {"inputs": prompt, "parameters": {"max_new_tokens": 64}}
    assert requests.post(trained_server.url + "/generate", json=body, timeout=120).json()["generated_text"] == greedy
    for seed, quote in sampled.items():
        body = {"inputs": prompt, "parameters": {"max_new_tokens": 64, "temperature": 0.8, "seed": seed}}
        text = requests.post(trained_server.url + "/generate", json=body, timeout=120).json()["generated_text"]
        if quote.endswith(" ..."):
            assert text.startswith(quote[:-len(" ...")]), (seed, text)
        else:
            assert text == quote, (seed, text)


def test_readme_chat_example_is_an_answer_in_the_assistant_turn(trained_server):
    """A model that learnt its chat template ends its turn instead of running on as `user\\nuser\\n...`."""
    (command,) = [c.line for c in curl_commands() if c.doc == "README.md" and '"messages"' in c.line]
    words = shlex.split(command)
    body = json.loads(words[words.index("-d") + 1])
    answer = requests.post(trained_server.url + "/invocations", json=body, timeout=120).json()
    choice = answer["choices"][0]
    text = choice["message"]["content"]
    assert choice["finish_reason"] == "stop", text  # the end of its turn, not max_tokens
    assert not {line.strip() for line in text.splitlines()} & {"user", "assistant", "system"}, text
    assert "<|im_" not in text
    assert_sentence(text, "the README's chat example")


def run_python(code: str, name: str) -> str:
    ast.parse(code)  # the docs show valid Python
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, name, "exec"), {"__name__": "__doc_example__"})
    return printed.getvalue()


@pytest.mark.parametrize("example", [e for e in python_examples() if f"http://{SERVER_HOST}" in e.code], ids=str)
def test_python_example_against_the_server_prints_an_answer(trained_server, example):
    local = example.code.replace(f"http://{SERVER_HOST}", trained_server.url)
    assert_sentence(run_python(local, str(example)), str(example))


@pytest.mark.parametrize("example", [e for e in python_examples() if RUNTIME_URL in e.code], ids=str)
def test_python_example_against_the_local_endpoint_prints_an_answer(local_endpoint, example):
    local = example.code.replace(RUNTIME_URL, local_endpoint.runtime_url)
    assert_sentence(run_python(local, str(example)), str(example))


@pytest.mark.parametrize("example", [e for e in python_examples() if 'instance_type="local"' in e.code], ids=str)
def test_python_local_deploy_example_streams_and_cleans_up(trained_tiny_model_dir, example):
    local = example.code.replace('"models/tiny"', repr(str(trained_tiny_model_dir)))
    assert local != example.code, f"{example} does not name the demo model directory models/tiny"
    assert_sentence(run_python(local, str(example)), str(example))


@pytest.mark.parametrize("command", [c for c in deploy_cli_commands() if cli_arguments(c)[0] == "invoke"], ids=str)
def test_invoke_command_prints_an_answer(local_endpoint, command, tmp_path):
    arguments = cli_arguments(command)
    arguments = [local_endpoint.endpoint_name if a in ("ENDPOINT", "sluice-local") else a for a in arguments]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
           "AWS_DEFAULT_REGION": local_endpoint.region, "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
           "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": local_endpoint.runtime_url}
    env.pop("AWS_PROFILE", None)
    done = subprocess.run([sys.executable, "-m", "deploy", *arguments], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert_sentence(done.stdout, str(command))
