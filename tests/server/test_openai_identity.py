"""What OpenAI clients read first in every answer: a response id and the model's name.

OpenAI's SDKs, LangChain and tracing tools key answers on ``id`` (``chatcmpl-...``, ``cmpl-...``)
and show ``model``; a served directory is named by its base name (or ``SERVED_MODEL_NAME``),
never by an absolute path of the serving machine, and ``/v1/models`` lists the same name.
"""

from __future__ import annotations

import json
import re

import requests

from http_client import post, stream_raw

CHAT = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3}
COMPLETION = {"prompt": "Hi", "max_tokens": 3}


def chunks(raw: bytes) -> list[dict]:
    return [json.loads(line[len(b"data: "):]) for line in raw.split(b"\n\n")
            if line.startswith(b"data: {")]


def listed_model(url: str) -> str:
    return requests.get(url + "/v1/models", timeout=10).json()["data"][0]["id"]


def test_chat_and_completion_answers_carry_openai_ids_one_per_response(server):
    first, second = (post(server.url, CHAT, path="/v1/chat/completions").json() for _ in range(2))
    assert re.fullmatch(r"chatcmpl-[0-9a-f]{32}", first["id"]) and first["id"] != second["id"]
    completion = post(server.url, COMPLETION, path="/v1/completions").json()
    assert re.fullmatch(r"cmpl-[0-9a-f]{32}", completion["id"])

    _, raw = stream_raw(server.url, dict(CHAT, stream=True), path="/v1/chat/completions")
    ids = {chunk["id"] for chunk in chunks(raw)}
    assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")
    _, raw = stream_raw(server.url, dict(COMPLETION, stream=True), path="/v1/completions")
    ids = {chunk["id"] for chunk in chunks(raw)}
    assert len(ids) == 1 and ids.pop().startswith("cmpl-")


def test_a_served_directory_is_named_by_its_base_name_in_answers_and_v1_models(server, tiny_model_dir):
    chat = post(server.url, CHAT, path="/v1/chat/completions").json()
    completion = post(server.url, COMPLETION, path="/v1/completions").json()
    assert chat["model"] == completion["model"] == listed_model(server.url) == tiny_model_dir.name
    # A client naming a model still sees its own name echoed (TGI's rule; "tgi" means the served one).
    assert post(server.url, dict(CHAT, model="tgi"), path="/v1/chat/completions").json()["model"] == tiny_model_dir.name
    assert post(server.url, dict(CHAT, model="my-alias"), path="/v1/chat/completions").json()["model"] == "my-alias"


def test_served_model_name_renames_the_model_everywhere_openai_looks(start_server):
    server = start_server(env={"SERVED_MODEL_NAME": "acme/demo-chat"})
    chat = post(server.url, CHAT, path="/v1/chat/completions").json()
    assert chat["model"] == listed_model(server.url) == "acme/demo-chat"
