"""A variable only the vLLM engine reads, set on a server of the embedded engine, is named at start
as ignored (engines/engine_settings), never taken silently; the vLLM side is in
vllm/test_vllm_start_up_settings."""

from __future__ import annotations


def test_a_vllm_only_setting_on_the_embedded_engine_is_named_once_at_start(start_server, server):
    process = start_server(env={"SLUICE_ENGINE": "sluice", "SLUICE_VLLM_ENFORCE_EAGER": "true"})
    lines = [line for line in process.log_text().splitlines() if "ignored by the sluice engine" in line]
    assert len(lines) == 1 and lines[0].endswith(
        "ignored by the sluice engine serving here (SLUICE_ENGINE=sluice): "
        "SLUICE_VLLM_ENFORCE_EAGER (read by the vllm engine only)"), process.log_tail()
    assert "ignored by the" not in server.log_text()  # nothing to say when only its own variables are set
