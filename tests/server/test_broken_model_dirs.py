"""Issue 14's "every broken model dir exited 3 with one line", kept as a test through the real
`container/serve`: docs/serving-your-model.md promises exit code 3, one `sluice: error: model loading failed` line,
never a 200, and no internals (paths, exception text) in what a client reads meanwhile."""

from __future__ import annotations

import shutil
import time

import pytest
import requests

from deploy.local import ContainerProcess

STABLE_503 = ({"error": "Model is loading", "error_type": "healthcheck"},
              {"error": "Model failed to load; see the server log", "error_type": "healthcheck"})


def config_not_json(model_dir, target):
    target.mkdir()
    (target / "config.json").write_text("{not json")


def weights_missing(model_dir, target):
    shutil.copytree(model_dir, target)
    for weights in target.glob("*.safetensors"):
        weights.unlink()


def weights_truncated(model_dir, target):
    shutil.copytree(model_dir, target)
    for weights in target.glob("*.safetensors"):
        weights.write_bytes(weights.read_bytes()[:1000])


@pytest.mark.parametrize("breakage", [config_not_json, weights_missing, weights_truncated],
                         ids=lambda f: f.__name__)
def test_a_broken_model_dir_exits_3_with_one_line_and_never_answers_200(tiny_model_dir, tmp_path, breakage):
    broken = tmp_path / "secret-model-dir"
    breakage(tiny_model_dir, broken)
    process = ContainerProcess(broken).start()
    answers = []
    deadline = time.monotonic() + 120
    while process.proc.poll() is None:
        assert time.monotonic() < deadline, process.log_tail()
        try:
            response = requests.post(process.url + "/invocations", json={"inputs": "x"}, timeout=2)
            answers.append((response.status_code, response.json()))
        except requests.RequestException:
            pass  # not listening yet, or already gone
        time.sleep(0.05)
    assert process.proc.returncode == 3, process.log_tail()
    lines = [line for line in process.log_text().splitlines() if line.startswith("sluice: error:")]
    assert len(lines) == 1 and lines[0].startswith("sluice: error: model loading failed: "), lines
    assert all(status == 503 and body in STABLE_503 for status, body in answers), answers


def test_a_model_dir_without_a_tokenizer_says_so_in_one_line(tiny_model_dir, tmp_path):
    """Found by an on-call probe: a directory with config and weights but no tokenizer files
    exited 3 with transformers' five-line advice to install sentencepiece or tiktoken, which
    names neither the directory nor what is missing."""
    broken = tmp_path / "model-without-tokenizer"
    shutil.copytree(tiny_model_dir, broken)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
        (broken / name).unlink(missing_ok=True)
    process = ContainerProcess(broken).start()
    assert process.proc.wait(timeout=120) == 3, process.log_tail()
    log = process.log_text().splitlines()
    at = [i for i, line in enumerate(log) if line.startswith("sluice: error:")]
    assert len(at) == 1, log
    line = log[at[0]]
    assert line.startswith("sluice: error: model loading failed: ") and "no tokenizer" in line, line
    assert str(broken) in line and "tokenizer.json" in line, line
    # the one line is all of it: the next line is gunicorn's own, not the rest of a message
    following = log[at[0] + 1:at[0] + 2]
    assert all(" gunicorn.error: " in next_line for next_line in following), following
