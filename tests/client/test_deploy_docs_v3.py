"""docs/deploy.md's SDK v3 and inference-component examples run as written against `make local`.

Those examples assume the variables `make local` prints are exported (they name the endpoint
`sluice-local` and no URL), so each runs here in this process with exactly those variables set
(`LocalEndpoint.client_environment`) against a local endpoint of the trained demo model. Examples
that need an S3 bucket or an AWS account are left to the reader; the ones run are listed by what
they call, so a rewrite that drops one fails here.
"""

from __future__ import annotations

import contextlib
import io
import re

import pytest

from deploy import LocalEndpoint
from doc_examples import RUNTIME_URL, python_examples

LOCAL_ONLY = [e for e in python_examples() if e.doc == "docs/deploy.md" and '"sluice-local"' in e.code
              and RUNTIME_URL not in e.code and "s3://" not in e.code and 'instance_type="local"' not in e.code]


def test_the_examples_this_file_runs_are_still_in_the_docs():
    wanted = ("stream_tokens(endpoint", "create_inference_component(", "InferenceComponent.create(", "open_session(")
    calls = {name for example in LOCAL_ONLY for name in wanted if name in example.code}
    assert calls == set(wanted)


@pytest.fixture(scope="module")
def make_local(trained_tiny_model_dir):
    with LocalEndpoint(trained_tiny_model_dir, env={"SAGEMAKER_ENABLE_STATEFUL_SESSIONS": "true"}) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def checkout(trained_tiny_model_dir, tmp_path_factory):
    """A working directory with ``models/adapters/cheese`` where ``make adapter`` puts it (a random
    adapter of the same model here: the example shows the mechanics, not the style)."""
    from demo.build_adapter import build_adapter

    root = tmp_path_factory.mktemp("checkout")
    build_adapter(trained_tiny_model_dir, root / "models" / "adapters" / "cheese", seed=1)
    return root


@pytest.mark.parametrize("example", LOCAL_ONLY, ids=str)
def test_local_example_prints_an_answer(make_local, checkout, example, monkeypatch):
    monkeypatch.chdir(checkout)
    for name, value in make_local.client_environment().items():
        monkeypatch.setenv(name, value)
    from sagemaker.core.utils.utils import SageMakerClient

    SageMakerClient.reset()  # its clients keep the URLs of the environment they were made in
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(example.code, str(example), "exec"), {"__name__": "__doc_example__"})
    finally:
        SageMakerClient.reset()
    assert re.search(r"[^\W\d_]{2,}", printed.getvalue()), f"{example} printed {printed.getvalue()!r}"
