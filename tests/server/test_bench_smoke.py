"""Smoke test of the benchmark (`make bench`): `bench/run.py --quick` end to end, tiny model.

It starts the real container/serve, so this checks the benchmark still speaks the server's wire
format and produces a complete result file; it asserts no timings (CI machines vary), only that
every figure exists and is a measurement rather than a zero from a broken client.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_quick_benchmark_writes_every_figure(tmp_path, tiny_model_dir):
    out = tmp_path / "bench.json"
    completed = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--skip-transformers-serve",
         "--model-dir", str(tiny_model_dir), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(out.read_text())

    config = results["config"]
    assert results["sequential"]["generated_tokens"] == config["requests"] * config["new_tokens"]
    assert results["sequential"]["tokens_per_s"] > 0
    assert list(results["ideal"]) == ["float32"]  # the ideal schedule at each contender's dtype
    assert results["ideal"]["float32"]["prefill_total_s"] > 0
    assert all(step > 0 for step in results["ideal"]["float32"]["decode_step_s"].values())

    assert results["config"]["contenders"] == ["sluice-fp32"]
    sluice = results["contenders"]["sluice-fp32"]
    assert sluice["dtype"] == "float32" and sluice["info"]["model_dtype"] == "float32"
    levels = sluice["levels"]
    assert sorted(levels, key=int) == [str(c) for c in config["levels"]]
    for concurrency, level in levels.items():
        assert level["errors"] == 0, level["error_samples"]
        assert level["requests"] == max(config["requests"], int(concurrency))
        # Counted from the server's own details (a trained model may stop early at EOS).
        assert 0 < level["generated_tokens"] <= level["requests"] * config["new_tokens"]
        assert level["min_tokens_per_request"] >= 1
        for key in ("tokens_per_s", "ttft_p50_s", "ttft_p95_s", "itl_p50_s", "itl_p95_s",
                    "ping_p99_s", "tree_peak_rss_mib", "ideal_s", "wall_s"):
            assert level[key] > 0, key
        assert level["ping_count"] > 0 and level["ping_failures"] == 0
        ratios = results["ratios"]["levels"][concurrency]["sluice-fp32"]
        assert ratios["vs_sequential"] > 0 and ratios["efficiency"] > 0
        assert ratios["vs_vllm_server"] is None  # not run, so no ratio is invented
    # Generated, not replayed: the response cache is off and the server saw every request succeed.
    chat, arrivals = results["scenarios"]["chat"]["sluice-fp32"], results["scenarios"]["arrivals"]["sluice-fp32"]
    in_sessions = results["scenarios"]["chat_sessions"]["sluice-fp32"]
    metrics = sluice["metrics"]
    assert metrics["sluice_cache_hits"] == 0
    scenario_requests = (len(chat["prompt_tokens"]) + chat["concurrent"]["requests"]
                         + sum(variant["turns"] for variant in in_sessions.values())
                         + 2 * arrivals["running_streams"] + arrivals["arriving_prompts"])
    assert metrics["tgi_request_success"] == sum(level["requests"] for level in levels.values()) + 2 + scenario_requests
    assert results["ratios"]["ttft_vs_prefill_plus_one_decode_c1"]["sluice-fp32"]["median_of_ratios"] > 0
    # The scenarios measured something real on every contender that ran them.
    assert chat["problems"] == [] and chat["first_ttft_s"] > 0 and chat["rest_ttft_p50_s"] > 0
    assert chat["shared_prefix_tokens"] >= config["chat"]["system_tokens"]
    for variant in in_sessions.values():  # conversations with the model's own answers, in sessions and not
        assert variant["problems"] == [] and variant["first_ttft_p50_s"] > 0 and variant["follow_up_ttft_p50_s"] > 0
    assert "a follow-up turn in a session / a first turn" in results["table_markdown"]
    assert arrivals["problems"] == [] and arrivals["during_arrivals"]["gaps"] > 0
    assert arrivals["without_arrivals"]["itl_p95_s"] > 0
    assert "head_to_head" not in results  # needs both vLLM contenders
    assert "| Sluice (own engine) | fp32 |" in results["table_markdown"]
    assert "| Sluice (own engine) | fp32 |" in completed.stdout
