"""gpu-sim's ratios: "best vLLM server" is chosen among layouts asked what Sluice's OpenAI route
is asked, and Sluice's TGI stream is also set against vLLM's server asked for the same
log-probabilities (bench/gpu_sim)."""

from __future__ import annotations

from bench.gpu_sim import report, scenario


def _point(rates: dict) -> dict:
    return {key: {"median": {"tokens_per_s": rate}} for key, rate in rates.items()}


def test_the_log_probability_server_is_never_the_best_layout_but_is_the_tgi_streams_same_work():
    results = {"points": {"10": {"256": _point({"sluice-vllm": 900.0, "sluice-vllm-openai": 1000.0,
                                                "vllm-server-uni": 800.0, "vllm-server-uni-2api": 1000.0,
                                                "vllm-server-uni-logprobs": 2000.0})}}}
    ratios = scenario.ratios(results)["10"]["256"]
    assert ratios["best_vllm_server"] == "vllm-server-uni-2api"  # the faster log-probability server is no layout
    assert ratios["sluice-vllm-openai"] == 1.0
    assert ratios["sluice-vllm"] == 0.9
    assert ratios["same_work"] == 0.45


def test_the_same_work_line_is_reported_apart_from_the_issue_lines_and_only_when_measured():
    rates = {"sluice-vllm": 900.0, "vllm-server-uni": 1000.0, "vllm-server-uni-logprobs": 600.0}
    points = {"10": {"256": _point(rates)}}
    results = {"points": points}
    results["ratios"] = scenario.ratios(results)
    lines = report.acceptance(results)
    assert any(line.startswith("- (Not an issue line.)") and "1.50×" in line for line in lines)
    assert any("NOT met (lowest 0.90×" in line for line in lines)
    del points["10"]["256"]["vllm-server-uni-logprobs"]
    results["ratios"] = scenario.ratios(results)
    assert not any("Not an issue line" in line for line in report.acceptance(results))
