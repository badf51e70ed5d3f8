"""Fast tier: SageMaker's adapter contract through the real app, driver and service, over a fake
engine whose answers name the adapter that produced them (``<name>-t1 ...``; ``t1 ...`` is the base).

Registering (body or query, alias header, 400/404/409), selecting (header, ``adapter_id``,
``model``), an unknown adapter as a 404 in every dialect and never the base, the response cache
keyed by adapter registration, the API key over the adapter routes. The real engines' side
(weights, batches, eviction, the prefix cache) is in tests/server/test_adapters.py.
"""

from __future__ import annotations

import json

import pytest

from fake_engine import FakeEngine, in_process_client
from sluice.serving.response_cache import ResponseCache

HEADER = "X-Amzn-SageMaker-Adapter-Identifier"
GENERATE = {"inputs": "hi", "parameters": {"max_new_tokens": 2}}
CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


@pytest.fixture
def client(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    app = in_process_client(FakeEngine(), cache=ResponseCache(16))
    app.adapter_dir = tmp_path
    return app


def register(client, name: str, **fields):
    return client.post("/adapters", json=dict({"name": name, "src": str(client.adapter_dir / name)}, **fields))


def generated(response) -> str:
    body = response.get_json()
    body = body[0] if isinstance(body, list) else body
    return body["generated_text"] if "generated_text" in body else body["choices"][0]["message"]["content"]


def test_register_by_body_or_by_query_and_select_by_header_adapter_id_or_model(client):
    assert register(client, "a").get_json()["message"] == "Adapter a registered"
    by_query = client.post(f"/adapters?name=b&src={client.adapter_dir / 'b'}&preload=false")
    assert by_query.status_code == 200 and by_query.get_json()["adapter"]["loaded"] is False

    assert generated(client.post("/generate", json=GENERATE)) == " t1 t2"
    assert generated(client.post("/generate", json=GENERATE, headers={HEADER: "a"})) == " a-t1 a-t2"
    assert generated(client.post("/invocations", json=GENERATE, headers={HEADER: "b"})).endswith(" b-t1 b-t2")
    with_id = dict(GENERATE, parameters={"max_new_tokens": 2, "adapter_id": "b"})
    assert generated(client.post("/generate", json=with_id)) == " b-t1 b-t2"
    assert generated(client.post("/v1/chat/completions", json=dict(CHAT, model="a"))) == " a-t1 a-t2"
    assert generated(client.post("/v1/chat/completions", json=CHAT, headers={HEADER: "b"})) == " b-t1 b-t2"

    listed = client.get("/adapters").get_json()["adapters"]
    assert [(a["name"], a["src"]) for a in listed] == [("a", str(client.adapter_dir / "a")),
                                                     ("b", str(client.adapter_dir / "b"))]
    models = [m["id"] for m in client.get("/v1/models").get_json()["data"]]
    assert models == ["fake-model", "a", "b"]


def test_the_alias_header_names_the_adapter_in_the_answers(client):
    answer = client.post("/adapters", json={"name": "a", "src": str(client.adapter_dir / "a")},
                         headers={"X-Amzn-SageMaker-Adapter-Alias": "support-bot"})
    assert answer.get_json()["message"] == "Adapter support-bot registered"
    assert client.delete("/adapters/a").get_json() == {"message": "Adapter support-bot unregistered"}


@pytest.mark.parametrize("query, body, detail", [
    ("", {"src": "/tmp"}, "missing `name`"),
    ("", {"name": "a"}, "missing `src`"),
    ("", {"name": "/a", "src": "/tmp"}, "not a valid adapter name"),
    ("", {"name": "a", "src": "/tmp", "pin": "yes"}, "`pin` must be a boolean"),
    ("?name=a&src=/tmp&preload=maybe", None, "`preload` must be true or false"),
    ("?name=a&src=/tmp", {"name": "b", "src": "/tmp"}, "`name` differs"),
    ("", ["a", "/tmp"], "JSON object"),
    ("", {"name": "a", "src": "s3://bucket/adapters/a/"}, "S3 URI"),
])
def test_a_malformed_registration_is_a_400_naming_the_fault(client, query, body, detail):
    response = client.post("/adapters" + query, json=body) if body is not None else client.post("/adapters" + query)
    assert response.status_code == 400, response.get_json()
    assert detail in response.get_json()["error"]
    assert client.get("/adapters").get_json() == {"adapters": []}


def test_a_body_that_is_not_json_is_a_400(client):
    response = client.post("/adapters", data=b"{name: a", content_type="application/json")
    assert response.status_code == 400 and response.get_json()["error_type"] == "bad_request"


def test_a_missing_src_is_a_404_and_a_name_taken_is_a_409(client):
    missing = client.post("/adapters", json={"name": "a", "src": str(client.adapter_dir / "nowhere")})
    assert missing.status_code == 404 and "does not exist" in missing.get_json()["error"]
    assert register(client, "a").status_code == 200
    again = register(client, "a")
    assert again.status_code == 409 and "DELETE /adapters/a" in again.get_json()["error"]
    base_name = client.post("/adapters", json={"name": "fake-model", "src": str(client.adapter_dir / "b")})
    assert base_name.status_code == 409 and "base model's name" in base_name.get_json()["error"]


@pytest.mark.parametrize("path, body, headers", [
    ("/generate", GENERATE, {HEADER: "nope"}),
    ("/invocations", GENERATE, {HEADER: "nope"}),
    ("/generate", dict(GENERATE, parameters={"adapter_id": "nope"}), {}),
    ("/v1/completions", {"prompt": "hi", "max_tokens": 2}, {HEADER: "nope"}),
    ("/v1/chat/completions", CHAT, {HEADER: "nope"}),
])
def test_an_unknown_adapter_is_a_404_in_the_routes_dialect_never_the_base_model(client, path, body, headers):
    response = client.post(path, json=body, headers=headers)
    assert response.status_code == 404
    error = response.get_json()
    assert "adapter `nope`" in error["error"] and error["error_type"] == "validation"


def test_an_unknown_adapter_on_a_stream_is_its_last_in_band_event(client):
    response = client.post("/generate_stream", json=GENERATE, headers={HEADER: "nope"})
    assert response.status_code == 200
    events = [json.loads(line[5:]) for line in response.data.decode().split("\n") if line.startswith("data:")]
    assert len(events) == 1 and "adapter `nope`" in events[0]["error"]
    chat = client.post("/v1/chat/completions", json=dict(CHAT, stream=True, model="nope"), headers={HEADER: "nope"})
    assert b"adapter `nope`" in chat.data and chat.data.endswith(b"data: [DONE]\n\n")


def test_the_header_and_the_body_naming_different_adapters_is_a_422(client):
    register(client, "a"), register(client, "b")
    with_id = dict(GENERATE, parameters={"max_new_tokens": 2, "adapter_id": "b"})
    response = client.post("/generate", json=with_id, headers={HEADER: "a"})
    assert response.status_code == 422 and "name one adapter" in response.get_json()["error"]
    assert client.post("/v1/chat/completions", json=dict(CHAT, model="b"), headers={HEADER: "a"}).status_code == 422
    agreeing = client.post("/generate", json=dict(GENERATE, parameters={"max_new_tokens": 2, "adapter_id": "a"}),
                           headers={HEADER: "a"})
    assert generated(agreeing) == " a-t1 a-t2"


def test_openai_model_is_the_base_for_its_own_name_and_tgi_and_strict_once_adapters_exist(client):
    chat = "/v1/chat/completions"
    for model in ("fake-model", "tgi", "my-alias"):  # no adapter registered: TGI's echo of any name
        assert generated(client.post(chat, json=dict(CHAT, model=model))) == " t1 t2"
    register(client, "a")
    for model in ("fake-model", "tgi"):
        assert generated(client.post(chat, json=dict(CHAT, model=model))) == " t1 t2"
    unknown = client.post(chat, json=dict(CHAT, model="my-alias"))
    assert unknown.status_code == 404 and "named by `model`" in unknown.get_json()["error"]
    # With SageMaker's header, a `model` that names no adapter is only the client's label.
    labelled = client.post(chat, json=dict(CHAT, model="my-alias"), headers={HEADER: "a"})
    assert generated(labelled) == " a-t1 a-t2" and labelled.get_json()["model"] == "my-alias"


def test_cache_entries_are_never_shared_across_adapters_nor_across_registrations(client):
    def cache(headers=None) -> str:
        response = client.post("/generate", json=GENERATE, headers=headers or {})
        assert response.status_code == 200
        return response.headers["x-sluice-cache"]

    register(client, "a"), register(client, "b")
    assert [cache(), cache({HEADER: "a"}), cache({HEADER: "b"})] == ["miss"] * 3
    assert [cache(), cache({HEADER: "a"}), cache({HEADER: "b"})] == ["hit"] * 3
    assert client.delete("/adapters/a").status_code == 200
    assert client.post("/generate", json=GENERATE, headers={HEADER: "a"}).status_code == 404
    register(client, "a")  # the same name again: new weights, maybe; never the old answers
    assert cache({HEADER: "a"}) == "miss"


def test_unregistering_an_unknown_adapter_is_a_404(client):
    response = client.delete("/adapters/nope")
    assert response.status_code == 404 and response.get_json()["error"] == "The adapter nope was not found"


def test_with_several_workers_registering_at_run_time_is_a_409_naming_lora_adapters(tmp_path):
    """Each gunicorn worker is its own process: a registration would reach only one of them."""
    (tmp_path / "a").mkdir()
    client = in_process_client(FakeEngine(), workers=2)
    refused = client.post("/adapters", json={"name": "a", "src": str(tmp_path / "a")})
    assert refused.status_code == 409 and "LORA_ADAPTERS" in refused.get_json()["error"]
    assert client.delete("/adapters/a").status_code == 409


def test_the_api_key_guards_every_adapter_route(tmp_path):
    (tmp_path / "a").mkdir()
    client = in_process_client(FakeEngine(), api_key="secret")
    body = {"name": "a", "src": str(tmp_path / "a")}
    assert client.post("/adapters", json=body).status_code == 401
    assert client.get("/adapters").status_code == 401
    assert client.delete("/adapters/a").status_code == 401
    key = {"Authorization": "Bearer secret"}
    assert client.post("/adapters", json=body, headers=key).status_code == 200
    assert client.get("/adapters", headers=key).get_json()["adapters"][0]["name"] == "a"
    assert client.delete("/adapters/a", headers=key).status_code == 200
