"""Smoke test of the memory soak (`bench/soak.py`): a quarter-minute run on the tiny model.

The soak itself runs ten minutes and more (bench/soak.py's docstring has the command); this only
checks that it still drives the real server, reads the caches' gauges and writes its report, with
every request answered. It asserts no memory figure: a short run on a shared machine proves none.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_short_soak_reports_rss_and_cache_sizes_for_every_sample(tmp_path, tiny_model_dir):
    out = tmp_path / "soak.json"
    completed = subprocess.run(
        [sys.executable, str(REPO / "bench" / "soak.py"), "--minutes", "0.25", "--every", "5", "--clients", "2",
         "--model-dir", str(tiny_model_dir), "--env", "RESPONSE_CACHE_SIZE=8", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    result = json.loads(out.read_text())
    samples = result["samples"]
    assert len(samples) >= 3 and result["errors"] == 0 and result["server_exit_code"] == 0
    assert all(s["rss_tree_mib"] > 0 and s["processes"] >= 2 for s in samples)  # arbiter and worker
    last = samples[-1]
    assert last["requests"] > 0 and last["response_capacity_entries"] == 8
    assert 0 < last["response_entries"] <= 8 and last["prefix_capacity_tokens"] > 0
    assert "slope_second_half_mib_per_min" in result and "| t (s) |" in completed.stdout
