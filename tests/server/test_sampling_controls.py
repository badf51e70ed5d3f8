"""TGI's watermark, OpenAI's ``n`` and ``logit_bias`` on the embedded engine, through the real
server (the batched sampler's rows against TGI's per-row processor: unit/test_batched_sampling).

Nothing here is accepted and ignored: a watermarked answer carries the watermark (the paper's
detector finds it; plain text stays near chance), ``n`` gives that many choices, each drawn with
its own seed, and ``logit_bias`` moves the tokens it names.
"""

from __future__ import annotations

import json

import requests

from http_client import post
from sluice.engines.native.watermark import detect

PROMPT = "The cheese shop on the corner sells"


def model_vocab(model_dir) -> int:
    """The width of the demo model's logits: what the watermark's greenlists are drawn over."""
    return json.loads((model_dir / "config.json").read_text())["vocab_size"]


def generated_ids(url: str, **parameters) -> list[int]:
    body = {"inputs": PROMPT, "parameters": dict(parameters, max_new_tokens=128, details=True)}
    response = post(url, body, path="/generate")
    assert response.status_code == 200, response.text
    return [token["id"] for token in response.json()["details"]["tokens"]]


def test_the_watermark_z_score_separates_watermarked_from_plain_text(server, tiny_model_dir):
    """128 sampled tokens: watermarked text scores far above the paper's threshold of 4 (its
    greenlist share, gamma 0.5, plus what delta 2.0 adds), plain text near 0."""
    vocab = model_vocab(tiny_model_dir)
    plain = detect(generated_ids(server.url, do_sample=True, seed=1), vocab)
    marked = detect(generated_ids(server.url, do_sample=True, seed=1, watermark=True), vocab)
    assert marked.z > 4 and plain.z < 3, (plain, marked)


def chat(url: str, **body) -> dict:
    body = dict({"messages": [{"role": "user", "content": "Name a cheese."}], "max_tokens": 8}, **body)
    response = requests.post(url + "/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_n_gives_that_many_choices_each_reproducible_from_the_seed(server):
    first = chat(server.url, n=2, seed=11, temperature=0.9)
    texts = [c["message"]["content"] for c in first["choices"]]
    assert len(texts) == 2 and texts[0] != texts[1]
    assert [c["message"]["content"] for c in chat(server.url, n=2, seed=11, temperature=0.9)["choices"]] == texts
    alone = chat(server.url, seed=12, temperature=0.9)["choices"][0]["message"]["content"]
    assert alone == texts[1]  # the second choice drew with the seed after the client's
    assert first["usage"]["completion_tokens"] == 16


def completion(url: str, **body) -> requests.Response:
    return requests.post(url + "/v1/completions", json=dict({"prompt": PROMPT, "max_tokens": 6}, **body), timeout=60)


def test_logit_bias_forces_or_bans_the_tokens_it_names(server, tiny_model_dir):
    from tokenizers import Tokenizer

    token = 300
    forced = completion(server.url, logit_bias={str(token): 100}).json()["choices"][0]["text"]
    assert forced == Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json")).decode([token] * 6)
    greedy = generated_ids(server.url)[:6]
    banned = completion(server.url, logit_bias={str(greedy[0]): -100}).json()["choices"][0]["text"]
    assert banned != completion(server.url).json()["choices"][0]["text"]
    out_of_vocabulary = completion(server.url, logit_bias={"99999": 1})
    assert out_of_vocabulary.status_code == 422 and "99999" in out_of_vocabulary.json()["error"]
