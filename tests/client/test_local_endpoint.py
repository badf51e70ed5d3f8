"""The local sagemaker-runtime API, driven by the real, unmodified boto3 client.

Two kinds of container sit behind it: a scripted HTTP container (for wire details the real one
cannot produce on demand: header pass-through, a connection cut mid-chunk) and the real Sluice
container on the tiny demo model (streamed text == non-streamed text, container errors, a
container killed mid-stream).
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from deploy.errors import ContainerStartError, ModelStreamError, ValidationError
from deploy.eventstream import decode_messages
from deploy.local import LocalEndpoint, LocalRuntime, free_port
from deploy.stream import EventIterator, TokenIterator
from local_processes import ctrl_c, sigint_as_in_a_terminal

REPO = Path(__file__).resolve().parents[2]
SSE_EVENTS = [b'data: {"token":{"id":1,"text":"\xe6\x97\xa5","special":false}}\n\n',
              b'data: {"token":{"id":2,"text":"\xe6\x9c\xac","special":false},'
              b'"generated_text":"\xe6\x97\xa5\xe6\x9c\xac"}\n\n']


class ScriptedContainer(BaseHTTPRequestHandler):
    """``POST /invocations`` whose behaviour is chosen by the request body's ``mode``."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        mode = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["mode"]
        if mode == "slow":
            time.sleep(2)
            return self._send(200, "application/json", b"[]")
        if mode == "echo-headers":
            return self._send(200, "application/json", json.dumps(dict(self.headers)).encode())
        if mode == "fail":
            return self._send(422, "application/json",
                              b'{"error":"Input validation error: bad","error_type":"validation"}')
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Amzn-SageMaker-Custom-Attributes",
                         self.headers.get("X-Amzn-SageMaker-Custom-Attributes", ""))
        self.end_headers()
        for event in SSE_EVENTS:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
            if mode == "break":
                self.close_connection = True
                return  # no terminating chunk: the connection just closes
        self.wfile.write(b"0\r\n\r\n")

    def _send(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def scripted_runtime():
    container = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedContainer)
    threading.Thread(target=container.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{container.server_address[1]}"
    with LocalRuntime({"scripted": url}) as runtime:
        yield runtime
    container.shutdown()
    container.server_close()


def runtime_client(url):
    return boto3.client("sagemaker-runtime", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x",
                        config=Config(retries={"total_max_attempts": 1}))


def stream(client, endpoint, body, **kwargs):
    return client.invoke_endpoint_with_response_stream(
        EndpointName=endpoint, Body=json.dumps(body), ContentType="application/json", **kwargs)


def test_each_container_chunk_arrives_as_one_payload_part(scripted_runtime):
    response = stream(runtime_client(scripted_runtime.url), "scripted", {"mode": "stream"},
                      CustomAttributes="trace=42")
    assert response["ContentType"] == "text/event-stream"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    assert response["CustomAttributes"] == "trace=42"  # forwarded, then echoed by the container
    assert list(response["Body"]) == [{"PayloadPart": {"Bytes": e}} for e in SSE_EVENTS]


def test_accept_and_custom_attributes_reach_the_container(scripted_runtime):
    client = runtime_client(scripted_runtime.url)
    response = stream(client, "scripted", {"mode": "echo-headers"}, Accept="application/jsonlines",
                      CustomAttributes="a=b")
    seen = json.loads(b"".join(e["PayloadPart"]["Bytes"] for e in response["Body"]))
    assert seen["Accept"] == "application/jsonlines"
    assert seen["X-Amzn-SageMaker-Custom-Attributes"] == "a=b"
    assert "Authorization" not in seen  # SageMaker strips headers outside its API


def test_container_cut_mid_stream_gives_stream_broken(scripted_runtime):
    tokens = TokenIterator(stream(runtime_client(scripted_runtime.url), "scripted",
                                  {"mode": "break"})["Body"])
    assert next(tokens) == "日"
    with pytest.raises(ModelStreamError):
        next(tokens)


def test_stream_broken_frame_carries_its_error_code_on_the_wire(scripted_runtime):
    import urllib.request
    request = urllib.request.Request(
        f"{scripted_runtime.url}/endpoints/scripted/invocations-response-stream",
        data=b'{"mode": "break"}', headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        messages = decode_messages(response.read())
    assert messages[-1].headers[":exception-type"] == "ModelStreamError"
    assert json.loads(messages[-1].payload)["ErrorCode"] == "StreamBroken"


def test_container_error_becomes_model_error_424(scripted_runtime):
    client = runtime_client(scripted_runtime.url)
    for call in (lambda: client.invoke_endpoint(EndpointName="scripted", Body=b'{"mode":"fail"}'),
                 lambda: stream(client, "scripted", {"mode": "fail"})):
        with pytest.raises(ClientError) as caught:
            call()
        error = caught.value.response
        assert error["Error"]["Code"] == "ModelError"
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
        assert error["Error"]["Message"] == (
            'Received client error (422) from primary with message '
            '"{"error":"Input validation error: bad","error_type":"validation"}"')
        assert error["OriginalStatusCode"] == 422


def test_unknown_endpoint_is_a_validation_error(scripted_runtime):
    with pytest.raises(ClientError) as caught:
        stream(runtime_client(scripted_runtime.url), "nope", {"mode": "stream"})
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert "nope" in caught.value.response["Error"]["Message"]


def test_a_container_slower_than_the_invocation_limit_is_sagemakers_timeout_model_error():
    container = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedContainer)
    threading.Thread(target=container.serve_forever, daemon=True).start()
    try:
        with LocalRuntime({"slow": f"http://127.0.0.1:{container.server_address[1]}"},
                          container_timeout=0.5) as runtime:
            with pytest.raises(ClientError) as caught:
                runtime_client(runtime.url).invoke_endpoint(EndpointName="slow", Body=b'{"mode": "slow"}')
    finally:
        container.shutdown()
        container.server_close()
    error = caught.value.response
    assert error["Error"]["Code"] == "ModelError" and error["OriginalStatusCode"] == 0
    assert error["Error"]["Message"].startswith(
        'Received server error (0) from primary with message "Your invocation timed out while waiting for a '
        'response from container primary.')


def validation_error_of(call) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return caught.value.response["Error"]["Message"]


@pytest.mark.parametrize("field,value,says", [
    ("TargetVariant", "Canary", "Variant Canary not found"),
    ("TargetModel", "model-b.tar.gz", "not a multi-model endpoint"),
    ("TargetContainerHostname", "secondary", "not a multi-container endpoint"),
    ("EnableExplanations", "`true`", "no explainer"),
])
def test_routing_headers_the_endpoint_cannot_honour_are_validation_errors(scripted_runtime, field, value, says):
    """SageMaker refuses them before any container runs; served anyway, the client would believe it
    reached another variant, model or container than the one that answered."""
    client = runtime_client(scripted_runtime.url)
    body = json.dumps({"mode": "echo-headers"})
    assert says in validation_error_of(lambda: client.invoke_endpoint(
        EndpointName="scripted", Body=body, ContentType="application/json", **{field: value}))
    if field in ("TargetVariant", "TargetContainerHostname"):  # the others are not streaming parameters
        assert says in validation_error_of(lambda: stream(client, "scripted", {"mode": "echo-headers"},
                                                           **{field: value}))
    answered = client.invoke_endpoint(EndpointName="scripted", Body=body, ContentType="application/json",
                                      TargetVariant="AllTraffic")
    assert answered["InvokedProductionVariant"] == "AllTraffic"


def test_the_streaming_api_cannot_open_a_session_nor_take_a_malformed_session_id(scripted_runtime):
    client = runtime_client(scripted_runtime.url)
    message = validation_error_of(lambda: stream(client, "scripted", {"mode": "echo-headers"},
                                                 SessionId="NEW_SESSION"))
    assert "sessionId" in message and "cannot open a session" in message
    assert "regular expression" in validation_error_of(lambda: client.invoke_endpoint(
        EndpointName="scripted", Body=b'{"mode": "echo-headers"}', SessionId="bad id!"))
    seen = json.loads(client.invoke_endpoint(EndpointName="scripted", Body=b'{"mode": "echo-headers"}',
                                             SessionId="NEW_SESSION")["Body"].read())
    assert seen["X-Amzn-SageMaker-Session-Id"] == "NEW_SESSION"  # InvokeEndpoint may open one


# --- the real Sluice container on the tiny demo model ------------------------------------------

GREEDY = {"do_sample": False, "max_new_tokens": 16, "return_full_text": False}


@pytest.fixture(scope="module")
def real_runtime(server):
    with LocalRuntime({"sluice": server.url}) as runtime:
        yield runtime


@pytest.mark.parametrize("prompt", ["The quick brown fox", "こんにちは、今日は"])
def test_streamed_tokens_equal_the_non_streamed_text(real_runtime, prompt):
    client = runtime_client(real_runtime.url)
    body = {"inputs": prompt, "parameters": GREEDY}
    answer = client.invoke_endpoint(EndpointName="sluice", Body=json.dumps(body),
                                    ContentType="application/json")
    assert answer["ContentType"].startswith("application/json")
    expected = json.loads(answer["Body"].read())[0]["generated_text"]
    assert expected, "the comparison below must not be trivially between empty strings"
    response = stream(client, "sluice", {**body, "stream": True})
    assert response["ContentType"].startswith("text/event-stream")
    tokens = TokenIterator(response["Body"])
    assert "".join(tokens) == expected
    assert tokens.generated_text == expected


def test_ndjson_stream_through_the_runtime(real_runtime):
    response = stream(runtime_client(real_runtime.url), "sluice",
                      {"inputs": "Hello", "parameters": GREEDY, "stream": True},
                      Accept="application/jsonlines")
    assert response["ContentType"].startswith("application/jsonlines")
    events = EventIterator(response["Body"])
    assert sum(1 for _ in events) >= 1 and isinstance(events.generated_text, str)


def test_real_container_rejection_is_a_model_error(real_runtime):
    body = {"inputs": "Hello", "parameters": {"temperature": -1.0}}
    with pytest.raises(ClientError) as caught:
        runtime_client(real_runtime.url).invoke_endpoint(
            EndpointName="sluice", Body=json.dumps(body), ContentType="application/json")
    error = caught.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["OriginalStatusCode"] == 422
    assert "Received client error (422) from primary" in error["Error"]["Message"]
    assert json.loads(error["OriginalMessage"])["error_type"] == "validation"


def test_invalid_streamed_request_raises_the_typed_in_band_error(real_runtime):
    body = {"inputs": "Hello", "parameters": {"temperature": -1.0}, "stream": True}
    with pytest.raises(ValidationError) as caught:
        list(TokenIterator(stream(runtime_client(real_runtime.url), "sluice", body)["Body"]))
    assert caught.value.error_type == "validation"
    assert "temperature" in str(caught.value)


def test_local_endpoint_streams_then_reports_a_killed_container(tiny_model_dir):
    with LocalEndpoint(tiny_model_dir, endpoint_name="tiny") as endpoint:
        client = endpoint.client()
        body = {"inputs": "Once upon a time", "parameters": GREEDY}
        assert "".join(TokenIterator(stream(client, "tiny", {**body, "stream": True})["Body"]))
        long_body = {"inputs": "Once upon a time",
                     "parameters": {**GREEDY, "max_new_tokens": 400}, "stream": True}
        tokens = TokenIterator(stream(client, "tiny", long_body)["Body"])
        next(tokens)
        os.killpg(endpoint.container.proc.pid, signal.SIGKILL)
        with pytest.raises(ModelStreamError):
            for _ in tokens:
                pass


def test_run_local_endpoint_serves_until_ctrl_c(tiny_model_dir):
    port = free_port()
    code = ("import sys; from deploy.local import run_local_endpoint; "
            f"run_local_endpoint({str(tiny_model_dir)!r}, {port}, endpoint_name='cli')")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=sigint_as_in_a_terminal)
    try:
        banner = proc.stdout.readline()  # printed once the container is ready
        assert f"http://127.0.0.1:{port}" in banner, banner + proc.stdout.read()
        answer = runtime_client(f"http://127.0.0.1:{port}").invoke_endpoint(
            EndpointName="cli", ContentType="application/json",
            Body=json.dumps({"inputs": "Hi", "parameters": GREEDY}))
        assert json.loads(answer["Body"].read())[0]["generated_text"]
    finally:
        output = ctrl_c(proc)
    assert proc.returncode == 0, output
    assert "Stopping." in output


class PingAnswers(BaseHTTPRequestHandler):
    """Some other server already on a port: it answers ``/ping`` 200, as another endpoint's container would."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def port_taken_by_another_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), PingAnswers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_container_port_in_use_is_refused_not_adopted(tiny_model_dir, port_taken_by_another_server):
    """The server already on --container-port answers /ping: the endpoint must not call it its own
    container and route invocations there; it stops before starting one, naming the port."""
    port = port_taken_by_another_server
    endpoint = LocalEndpoint(tiny_model_dir, container_port=port)
    try:
        with pytest.raises(ContainerStartError, match=f"port {port} is in use"):
            endpoint.start()
    finally:
        endpoint.stop()
    assert endpoint.container.proc is None  # nothing was started


def test_a_runtime_port_in_use_is_one_error_line(tiny_model_dir, port_taken_by_another_server, capsys):
    from deploy.__main__ import main

    port = port_taken_by_another_server
    assert main(["local", "--model-dir", str(tiny_model_dir), "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: port {port} is in use") and err.count("\n") == 1, err


@pytest.mark.parametrize("option", ["--port", "--container-port"])
def test_a_port_outside_the_tcp_range_is_a_usage_error(tiny_model_dir, option, capsys):
    from deploy.__main__ import main

    with pytest.raises(SystemExit) as info:
        main(["local", "--model-dir", str(tiny_model_dir), option, "99999"])
    assert info.value.code == 2 and option in capsys.readouterr().err
