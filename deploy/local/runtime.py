"""A local sagemaker-runtime API on 127.0.0.1 in front of Sluice containers.

moto does not implement ``InvokeEndpointWithResponseStream``, so streaming through the real,
unmodified boto3 client needs a server that speaks the service's wire format: this one proxies
``InvokeEndpoint`` and ``InvokeEndpointWithResponseStream`` to a container's ``POST /invocations``
the way SageMaker does (headers mapped, container errors wrapped in ``ModelError``, each container
chunk re-framed as one event-stream ``PayloadPart``, a broken container connection reported as a
``ModelStreamError`` exception event). Point boto3 at it with ``endpoint_url=runtime.url`` or
``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``; signatures are not checked.

Inference components and sessions pass as SageMaker passes them: ``InferenceComponentName``
selects the component's container (an adapter component adds
``X-Amzn-SageMaker-Adapter-Identifier``), ``SessionId`` goes to the container as
``X-Amzn-SageMaker-Session-Id``, and the container's new or closed session id comes back in the
headers boto3 reads as ``NewSessionId`` and ``ClosedSessionId``. The same port serves the
``sagemaker`` control plane for those components (``control_plane``; ``AWS_ENDPOINT_URL_SAGEMAKER``).
"""

from __future__ import annotations

import errno
import http.client
import json
import logging
import re
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from deploy.errors import LocalPortError
from deploy.eventstream import CONTENT_TYPE as EVENTSTREAM_CONTENT_TYPE
from deploy.eventstream import encode_exception, encode_payload_part
from deploy.local import aws_json
from deploy.local.backend import Backend
from deploy.local.control_plane import ControlPlane, Route
from deploy.local.invocation_checks import check_invocation_headers

log = logging.getLogger(__name__)

CONTAINER_HOSTNAME = "primary"
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # InvokeEndpoint's documented request limit
READ_SIZE = 64 * 1024
_ROUTE = re.compile(r"^/endpoints/([^/]+)/(invocations|invocations-response-stream)$")
# Request headers SageMaker forwards to the container; everything else is stripped.
_FORWARDED = ("Content-Type", "X-Amzn-SageMaker-Custom-Attributes",
              "X-Amzn-SageMaker-Inference-Id", "X-Amzn-SageMaker-Target-Variant",
              "X-Amzn-SageMaker-Session-Id")
COMPONENT_HEADER = "X-Amzn-SageMaker-Inference-Component"
SESSION_HEADER = "X-Amzn-SageMaker-Session-Id"
# What boto3 reads as InvokeEndpoint's NewSessionId and ClosedSessionId.
NEW_SESSION_HEADER = "X-Amzn-SageMaker-New-Session-Id"
CLOSED_SESSION_HEADER = "X-Amzn-SageMaker-Closed-Session-Id"
NEW_SESSION = "NEW_SESSION"  # the SessionId a client sends to open a session
# SageMaker's words when the container does not answer in time (a ModelError, original status 0).
INVOCATION_TIMED_OUT = (f"Your invocation timed out while waiting for a response from container {CONTAINER_HOSTNAME}. "
                        "Review the latency metrics for each container in Amazon CloudWatch, resolve the issue, "
                        "and try again.")


class _ContainerFailed(Exception):
    """The container could not be reached or answered non-2xx before any byte was streamed."""

    def __init__(self, status: int, body: bytes):
        super().__init__(status)
        self.status, self.body = status, body


class RuntimeRequestHandler(BaseHTTPRequestHandler):
    """One sagemaker-runtime request; the server holds the endpoint name -> container URL map."""

    protocol_version = "HTTP/1.1"  # chunked responses and connection reuse, as botocore expects
    server: "LocalRuntimeServer"

    def log_message(self, fmt, *args) -> None:
        log.debug("local runtime: " + fmt, *args)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        operation = aws_json.operation_of(self.headers.get(aws_json.TARGET_HEADER))
        if operation is not None:
            return self._control_plane(operation, body)
        match = _ROUTE.match(urlsplit(self.path).path)
        if not match:
            return self._send_error(404, "UnknownOperationException",
                                    f"Unknown operation {self.path}")
        name, operation = unquote(match.group(1)), match.group(2)
        streaming = operation == "invocations-response-stream"
        try:
            route = self.server.control_plane.route(name, self.headers.get(COMPONENT_HEADER))
            check_invocation_headers(self.headers, name, route.variant, streaming)
        except aws_json.ApiError as error:
            return self._send_error(error.status, error.code, error.message)
        if len(body) > MAX_PAYLOAD_BYTES:
            return self._send_error(400, "ValidationError",
                                    f"Request payload exceeds {MAX_PAYLOAD_BYTES} bytes.")
        accept = self.headers.get("X-Amzn-SageMaker-Accept" if streaming else "Accept")
        try:
            conn, response = self._call_container(route, body, accept)
        except _ContainerFailed as failure:
            return self._send_model_error(failure.status, failure.body)
        try:
            if streaming:
                self._relay_stream(response, route)
            else:
                self._relay_body(response, route)
        finally:
            conn.close()

    def _control_plane(self, operation: str, body: bytes) -> None:
        """A ``sagemaker`` operation (AWS JSON 1.1), answered by the control plane."""
        try:
            result = self.server.control_plane.handle(operation, aws_json.decode_request(body))
        except aws_json.ApiError as error:
            return self._send_json(error.status, error.body(), {"x-amzn-ErrorType": error.code})
        except Exception as error:  # noqa: BLE001 - answer like the service, log the cause
            log.exception("local control plane failed on %s", operation)
            failure = aws_json.ApiError("InternalFailure", f"{type(error).__name__}: {error}", 500)
            return self._send_json(500, failure.body(), {"x-amzn-ErrorType": failure.code})
        self._send_json(200, aws_json.encode_response(result))

    def _send_json(self, status: int, data: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", aws_json.CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _call_container(self, route: Route, body: bytes, accept: str | None):
        parts = urlsplit(route.container_url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port,
                                          timeout=self.server.container_timeout)
        headers = {key: self.headers[key] for key in _FORWARDED if self.headers.get(key)}
        headers.update(route.headers)
        if accept:
            headers["Accept"] = accept
        try:
            conn.request("POST", "/invocations", body=body, headers=headers)
            response = conn.getresponse()
        except TimeoutError as error:
            conn.close()
            raise _ContainerFailed(0, INVOCATION_TIMED_OUT.encode()) from error
        except (OSError, http.client.HTTPException) as error:
            conn.close()
            raise _ContainerFailed(0, f"Could not reach the container: {error}".encode()) from error
        if response.status >= 400:
            failed_body = response.read()
            conn.close()
            raise _ContainerFailed(response.status, failed_body)
        return conn, response

    def _relay_body(self, response: http.client.HTTPResponse, route: Route) -> None:
        try:
            data = response.read()
        except TimeoutError:
            return self._send_model_error(0, INVOCATION_TIMED_OUT.encode())
        except (OSError, http.client.HTTPException) as error:  # died before finishing the body
            return self._send_model_error(0, f"Incomplete response from the container: {error!r}"
                                          .encode())
        self.send_response(200)
        self._send_common_headers(response, route)
        self._send_session_headers(response)
        self.send_header("Content-Type", response.getheader("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _relay_stream(self, response: http.client.HTTPResponse, route: Route) -> None:
        """Re-frame each chunk the container writes as one PayloadPart, flushed at once."""
        self.send_response(200)
        self._send_common_headers(response, route)
        self.send_header("Content-Type", EVENTSTREAM_CONTENT_TYPE)
        self.send_header("X-Amzn-SageMaker-Content-Type",
                         response.getheader("Content-Type", "application/octet-stream"))
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            while True:
                data = response.read1(READ_SIZE)
                if not data:
                    break
                self._write_chunk(encode_payload_part(data))
        except TimeoutError:
            self._write_chunk(encode_exception(
                "ModelStreamError", "The model failed to finish sending the response within "
                "the timeout period.", "ModelInvocationTimeExceeded"))
        except (OSError, http.client.HTTPException) as error:
            log.info("container stream broken: %r", error)
            self._write_chunk(encode_exception(
                "ModelStreamError", "The TCP connection between the client and the model was "
                "reset or closed.", "StreamBroken"))
        self._write_chunk(b"")  # the terminating zero-length chunk

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _send_common_headers(self, response: http.client.HTTPResponse, route: Route) -> None:
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.send_header("x-Amzn-Invoked-Production-Variant", route.variant)
        attributes = response.getheader("X-Amzn-SageMaker-Custom-Attributes")
        if attributes:
            self.send_header("X-Amzn-SageMaker-Custom-Attributes", attributes)

    def _send_session_headers(self, response: http.client.HTTPResponse) -> None:
        """The container's session answer in InvokeEndpoint's fields: a session it opened (its
        ``X-Amzn-SageMaker-New-Session-Id``, or a ``X-Amzn-SageMaker-Session-Id`` answering a
        request that named none or ``NEW_SESSION``) and one it closed; values pass verbatim (``<id>; Expires=...``)."""
        opened = response.getheader(NEW_SESSION_HEADER)
        if opened is None and self.headers.get(SESSION_HEADER, NEW_SESSION) == NEW_SESSION:
            opened = response.getheader(SESSION_HEADER)
        if opened:
            self.send_header(NEW_SESSION_HEADER, opened)
        closed = response.getheader(CLOSED_SESSION_HEADER)
        if closed:
            self.send_header(CLOSED_SESSION_HEADER, closed)

    def _send_model_error(self, status: int, body: bytes) -> None:
        """A container 4xx/5xx becomes ``ModelError`` (424), with SageMaker's message wording."""
        original = body.decode("utf-8", errors="replace")
        kind = "client" if 400 <= status < 500 else "server"
        message = (f"Received {kind} error ({status}) from {CONTAINER_HOSTNAME} "
                   f"with message \"{original}\"")
        self._send_error(424, "ModelError", message,
                         {"OriginalStatusCode": status, "OriginalMessage": original})

    def _send_error(self, status: int, code: str, message: str, extra: dict | None = None) -> None:
        data = json.dumps({"message": message, **(extra or {})}).encode("utf-8")
        self.send_response(status)
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.send_header("x-amzn-ErrorType", code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class LocalRuntimeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, control_plane: ControlPlane, container_timeout: float):
        super().__init__(address, RuntimeRequestHandler)
        self.control_plane = control_plane
        self.container_timeout = container_timeout

    def handle_error(self, request, client_address) -> None:
        """A client that hangs up mid-stream is normal (it stopped iterating); log, don't print."""
        error = sys.exc_info()[1]
        if isinstance(error, (BrokenPipeError, ConnectionResetError)):
            log.debug("client %s went away: %r", client_address, error)
        else:
            log.exception("local runtime failed on a request from %s", client_address)


class LocalRuntime:
    """The runtime API on a background thread; also a context manager.

    ``endpoints`` maps endpoint names to container base URLs (``http://127.0.0.1:PORT``).
    ``container_timeout`` bounds each read from the container, like SageMaker's invocation limit.
    ``backend``: a boto3 session whose account answers the ``sagemaker`` operations the control
    plane does not serve itself (moto's, in the tests); ``checkout``: the Sluice checkout whose
    container runs the models of endpoints and components created through the control plane.
    """

    def __init__(self, endpoints: dict[str, str] | None = None, host: str = "127.0.0.1",
                 port: int = 0, container_timeout: float = 300.0, region: str = "us-east-1",
                 backend=None, checkout=None):
        backend = Backend(backend) if backend is not None else None
        self.control_plane = ControlPlane(backend.region if backend else region, backend, checkout)
        for name, url in (endpoints or {}).items():
            self.control_plane.add_local_endpoint(name, url)
        try:
            self.server = LocalRuntimeServer((host, port), self.control_plane, container_timeout)
        except (OSError, OverflowError) as error:  # OverflowError: a port outside 0-65535
            in_use = isinstance(error, OSError) and error.errno == errno.EADDRINUSE
            reason = "is in use" if in_use else f"cannot be listened on ({error})"
            raise LocalPortError(f"port {port} {reason}: the runtime API needs a free port (--port, "
                                 "runtime_port=; 0 picks one)") from None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def add_endpoint(self, name: str, container_url: str) -> None:
        self.control_plane.add_local_endpoint(name, container_url)

    def start(self) -> "LocalRuntime":
        self._thread = threading.Thread(target=self.server.serve_forever, name="local-runtime",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, and every container the control plane started."""
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join()
            self._thread = None
        self.server.server_close()
        self.control_plane.shutdown()

    def __enter__(self) -> "LocalRuntime":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
