"""The streaming notebook runs end to end against the local endpoint and the tiny demo model.

The notebook is documentation users copy from, so it is executed for real (nbclient, a fresh
kernel on this interpreter) rather than inspected: a change in deploy/ that breaks the blog's
workflow fails here. AWS is unreachable on purpose: the optional AWS cell stays off and every
default AWS endpoint points at a closed local port.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "sluice_streaming.ipynb"
KERNEL_NAME = "sluice-notebook-test"
CELL_TIMEOUT = 300
# Runs after the notebook even when a cell failed, so no container outlives the test.
CLEANUP = """
try:
    if "endpoint" in globals() and getattr(endpoint, "predictor", None) and endpoint.predictor.local_endpoint:
        endpoint.predictor.local_endpoint.stop()
except Exception as error:
    print("cleanup failed:", error)
"""


def kernel_manager(kernel_dir: Path) -> KernelManager:
    """A kernel on *this* interpreter, whatever kernelspecs the machine (or a fresh CI venv) has."""
    spec_dir = kernel_dir / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (sluice tests)", "language": "python"}))
    return KernelManager(kernel_name=KERNEL_NAME,
                         kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)]))


def stdout_of(cell) -> str:
    return "".join(output.get("text", "") for output in cell.get("outputs", [])
                   if output.get("output_type") == "stream" and output.get("name") == "stdout")


def cells_tagged(notebook, tag: str) -> list:
    return [cell for cell in notebook.cells if tag in cell.get("metadata", {}).get("tags", [])]


@pytest.fixture(scope="module")
def executed(tiny_model_dir, tmp_path_factory):
    """The notebook after running every cell, in a kernel whose cwd is notebooks/."""
    patch = pytest.MonkeyPatch()
    patch.setenv("SLUICE_MODEL_DIR", str(tiny_model_dir))
    patch.delenv("SLUICE_NOTEBOOK_AWS", raising=False)
    # Any AWS client not pointed at the local runtime would go to a closed port, not to AWS.
    patch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT, startup_timeout=120,
                            km=kernel_manager(tmp_path_factory.mktemp("kernels")),
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    try:
        with client.setup_kernel():
            try:
                for index, cell in enumerate(notebook.cells):
                    client.execute_cell(cell, index)
            finally:
                notebook.cells.append(new_code_cell(CLEANUP))
                client.execute_cell(notebook.cells[-1], len(notebook.cells) - 1)
                notebook.cells.pop()
    finally:
        patch.undo()
    return notebook


def test_notebook_runs_without_errors(executed):
    errors = [output for cell in executed.cells for output in cell.get("outputs", [])
              if output.get("output_type") == "error"]
    assert errors == []
    assert all(cell.get("execution_count") for cell in executed.cells if cell.cell_type == "code")


def test_streamed_cells_print_generated_text(executed):
    stream_cells = cells_tagged(executed, "stream")
    assert len(stream_cells) == 4  # Japanese, English, chat via runtime, chat via /v1/chat/completions
    for cell in stream_cells:
        assert stdout_of(cell).strip(), f"no streamed text from:\n{cell.source}"
        # print(..., flush=True) per token: the text reached the notebook in pieces, not at the end.
        assert len([output for output in cell.outputs if output.get("name") == "stdout"]) > 1


def test_streamed_text_equals_predicted_text(executed):
    (compare,) = cells_tagged(executed, "compare")
    assert "Streamed and non-streamed text are identical: True" in stdout_of(compare)
    assert "generated_text agrees: True" in stdout_of(compare)


def test_notebook_talks_to_localhost_and_cleans_up(executed):
    runtime_lines = [line for cell in executed.cells for line in stdout_of(cell).splitlines()
                     if line.startswith("runtime API:")]
    assert runtime_lines and all("http://127.0.0.1:" in line for line in runtime_lines)
    (cleanup,) = cells_tagged(executed, "cleanup")
    assert "local endpoint stopped: True" in stdout_of(cleanup)


def test_committed_notebook_has_no_outputs():
    """Outputs are cleared before committing: they bloat diffs and go stale."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells
    assert [cell.outputs for cell in code_cells] == [[] for _ in code_cells]
    assert [cell.execution_count for cell in code_cells] == [None for _ in code_cells]


def test_structured_output_cell_prints_schema_valid_json_and_a_tool_call(executed):
    (structured,) = cells_tagged(executed, "structured")
    lines = {line.split(":", 1)[0]: line.split(":", 1)[1] for line in stdout_of(structured).splitlines()}
    recipe = ast.literal_eval(lines["JSON answer"].strip())
    assert set(recipe) == {"dish", "minutes"} and 1 <= recipe["minutes"] <= 600 and len(recipe["dish"]) <= 20
    name, _, arguments = lines["tool call"].strip().partition(" ")
    arguments = ast.literal_eval(arguments)
    assert name == "get_weather" and arguments["city"] in {"Paris", "Oslo", "Lima"} and 1 <= arguments["days"] <= 7
