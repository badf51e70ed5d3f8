"""The README's quick-start examples print an answer when run against `make serve`'s trained tiny model.

The payloads are read from README.md itself (the curl commands, the TokenIterator snippet and the
`python -m deploy invoke` lines), and run as written, with only the host and endpoint name
replaced: if someone edits an example into one the demo model cannot answer, this fails.
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

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
README_HOST = "localhost:8080"
WORD = re.compile(r"[^\W\d_]{2,}")  # two letters in a row, any script (CJK included)


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def curl_commands() -> list[str]:
    """Every curl command of the README's bash blocks, continuation lines joined."""
    commands = []
    for block in code_blocks("bash"):
        for command in block.replace("\\\n", " ").splitlines():
            if command.lstrip().startswith("curl "):
                commands.append(command.strip())
    return commands


def token_iterator_snippet() -> str:
    (snippet,) = [b for b in code_blocks("python") if "requests.post(" in b and "TokenIterator(" in b]
    return snippet


def invoke_commands() -> list[list[str]]:
    """The README's `python -m deploy invoke` lines, as argument lists after `-m deploy`."""
    lines = [line for block in code_blocks("bash") for line in block.splitlines()
             if line.startswith("python -m deploy invoke ")]
    return [shlex.split(line, comments=True)[3:] for line in lines]


def assert_sentence(text: str, example: str) -> None:
    assert WORD.search(text) and len(text.strip()) >= 8, f"{example} printed {text!r}"


def text_of_curl_output(stdout: bytes) -> str:
    """The answer in what curl printed: a token stream, or a JSON body (TGI or chat)."""
    try:
        body = json.loads(stdout)
    except ValueError:
        return "".join(TokenIterator([stdout]))
    item = body[0] if isinstance(body, list) else body
    if "choices" in item:
        return item["choices"][0]["message"]["content"]
    return item["generated_text"]


@pytest.fixture(scope="module")
def trained_server(trained_tiny_model_dir):
    from deploy.local import ContainerProcess

    # DTYPE=auto, as `make serve` runs it (bf16 on a CPU with native bf16): the quotes must be
    # what a user of the README sees, not what the float32-pinned suite would print.
    env = {"RESPONSE_CACHE_SIZE": "0", "DTYPE": "auto"}
    with ContainerProcess(trained_tiny_model_dir, env=env) as process:
        yield process


def test_readme_has_the_examples_this_file_runs():
    commands = curl_commands()
    assert any('"stream": true' in c and '"inputs"' in c for c in commands)
    assert any('"messages"' in c for c in commands)
    assert token_iterator_snippet()
    assert invoke_commands()


@pytest.mark.parametrize("command", curl_commands(), ids=lambda c: re.sub(r"\W+", "-", c[-60:]))
def test_readme_curl_example_prints_an_answer(trained_server, command):
    local = command.replace(README_HOST, trained_server.url.removeprefix("http://"))
    assert local != command, "curl example does not target localhost:8080"
    done = subprocess.run(["bash", "-c", local + " --silent --show-error"], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert_sentence(text_of_curl_output(done.stdout), command)


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
    """Issue 13 item 2: the untaught model once answered chat with `user\nuser\n...`, which still
    looks like words; a model that learnt its template ends its turn instead of running on."""
    (command,) = [c for c in curl_commands() if '"messages"' in c]
    body = json.loads(shlex.split(command)[shlex.split(command).index("-d") + 1])
    answer = requests.post(trained_server.url + "/invocations", json=body, timeout=120).json()
    choice = answer["choices"][0]
    text = choice["message"]["content"]
    assert choice["finish_reason"] == "stop", text  # the end of its turn, not max_tokens
    assert not {line.strip() for line in text.splitlines()} & {"user", "assistant", "system"}, text
    assert "<|im_" not in text
    assert_sentence(text, "the README's chat example")


def test_readme_token_iterator_example_prints_an_answer(trained_server):
    snippet = token_iterator_snippet()
    local = snippet.replace(f"http://{README_HOST}", trained_server.url)
    assert local != snippet
    ast.parse(local)  # the README shows valid Python
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(local, "README.md", "exec"), {})
    assert_sentence(printed.getvalue(), "the TokenIterator example")


@pytest.fixture(scope="module")
def local_endpoint(trained_tiny_model_dir):
    with LocalEndpoint(trained_tiny_model_dir, endpoint_name="readme-local") as endpoint:
        yield endpoint


@pytest.mark.parametrize("arguments", invoke_commands(), ids=" ".join)
def test_readme_invoke_command_prints_an_answer(local_endpoint, arguments, tmp_path):
    arguments = [local_endpoint.endpoint_name if a == "ENDPOINT" else a for a in arguments]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
           "AWS_DEFAULT_REGION": local_endpoint.region, "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
           "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": local_endpoint.runtime_url}
    env.pop("AWS_PROFILE", None)
    done = subprocess.run([sys.executable, "-m", "deploy", *arguments], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert_sentence(done.stdout, "python -m deploy " + " ".join(arguments))
