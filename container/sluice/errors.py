"""Every error the server can answer with, and its HTTP status: the one error mapping.

Bodies are always ``{"error": str, "error_type": str}`` (TGI's ``ErrorResponse``), never HTML and
never a traceback: clients (text-generation, huggingface_hub, the SageMaker runtime) turn
``error_type`` into typed exceptions, and tracebacks belong in the log.
"""

from __future__ import annotations


class ServerError(Exception):
    """Base of the errors that become a JSON answer; subclasses fix status and ``error_type``."""

    status = 500
    error_type = "internal"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def body(self) -> dict:
        return {"error": self.message, "error_type": self.error_type}


class ValidationError(ServerError):
    """A request TGI would reject with 422; the text gets TGI's prefix."""

    status = 422
    error_type = "validation"

    def __init__(self, detail: str):
        super().__init__(f"Input validation error: {detail}")


class AdapterNotFoundError(ValidationError):
    """A request names a LoRA adapter that is not registered: 404 (vLLM's status for an unknown
    model), never the base model's answer (TGI#2505). A validation error otherwise: in-band on a
    stream, counted as one."""

    status = 404

    def __init__(self, name: str, field: str):
        super().__init__(f"adapter `{name}` (named by {field}) is not registered; register it with POST /adapters")


class DeserializeError(ServerError):
    """The JSON is well formed but is not a request (wrong types, missing ``inputs``)."""

    status = 422
    error_type = "validation"

    def __init__(self, detail: str):
        super().__init__(f"Failed to deserialize the JSON body into the target type: {detail}")


class MalformedJSONError(ServerError):
    status = 400
    error_type = "bad_request"

    def __init__(self, detail: str):
        super().__init__(f"Failed to parse the request body as JSON: {detail}")


class UnsupportedMediaTypeError(ServerError):
    status = 415
    error_type = "unsupported_media_type"

    def __init__(self, message: str = "Expected request with `Content-Type: application/json`"):
        super().__init__(message)


class PayloadTooLargeError(ServerError):
    status = 413
    error_type = "payload_too_large"

    def __init__(self, limit: int):
        super().__init__(f"Failed to buffer the request body: length limit exceeded ({limit} bytes)")


class NotFoundError(ServerError):
    status = 404
    error_type = "not_found"


class ConflictError(ServerError):
    """``POST /adapters`` with a name already registered (unregister it first) or a pin no slot can hold."""

    status = 409
    error_type = "conflict"


class AdapterMisfitError(ServerError):
    """An adapter directory the base model cannot serve: unreadable, unsupported (DoRA,
    ``modules_to_save``, embedding LoRA, biases), a rank above ``MAX_LORA_RANK``, or shapes and
    modules that do not match the model. 424, as SageMaker's adapter contract asks."""

    status = 424
    error_type = "adapter"

    def __init__(self, name: str, detail: str):
        super().__init__(f"Adapter {name} cannot be served: {detail}")


class MethodNotAllowedError(ServerError):
    status = 405
    error_type = "method_not_allowed"


class UnauthorizedError(ServerError):
    status = 401
    error_type = "unauthorized"

    def __init__(self):
        super().__init__("Unauthorized: a valid `Authorization: Bearer <API_KEY>` header is required")


class OverloadedError(ServerError):
    status = 429
    error_type = "overloaded"

    def __init__(self):
        super().__init__("Model is overloaded")


class GenerationError(ServerError):
    status = 424
    error_type = "generation"

    def __init__(self, detail: str):
        super().__init__(f"Request failed during generation: {detail}")


class IncompleteGenerationError(ServerError):
    status = 500
    error_type = "incomplete_generation"

    def __init__(self):
        super().__init__("Incomplete generation")


class TemplateError(ServerError):
    status = 422
    error_type = "template_error"

    def __init__(self, detail: str):
        super().__init__(f"Template error: {detail}")


class ToolError(ServerError):
    """A ``tools``/``tool_choice`` request TGI refuses (e.g. together with ``response_format``)."""

    status = 422
    error_type = "tool_error"

    def __init__(self, detail: str):
        super().__init__(f"Tool error: {detail}")


class BatchSizeError(ServerError):
    """More prompts in one completions request than TGI's MAX_CLIENT_BATCH_SIZE."""

    status = 422
    error_type = "batch size exceeded"


class SuffixNotSupportedError(ServerError):
    status = 422
    error_type = "suffix not supported"

    def __init__(self):
        super().__init__("Suffix is not supported and can be achieved by preprocessing the prompt.")


class SessionError(ServerError):
    """A stateful-session request SageMaker's contract refuses with 400: sessions off, a
    malformed ``requestType`` body, an unknown, expired or missing session id (the texts are
    those of AWS's model-hosting-container-standards package)."""

    status = 400
    error_type = "session"


class SessionFailedError(ServerError):
    """The session store itself failed (the standards package's 424)."""

    status = 424
    error_type = "session"


class UnknownRouteError(ServerError):
    """``route=`` in the custom attributes names no inference route (a rewritten path that
    does not exist is a 404, as in AWS's vLLM image)."""

    status = 404
    error_type = "not_found"


class ClientClosedError(ServerError):
    """The client went away before the answer was complete (nginx's 499); nobody reads it."""

    status = 499
    error_type = "client_closed"

    def __init__(self):
        super().__init__("Client closed the connection")


class NotReadyError(ServerError):
    """``/ping`` before the model is loaded (and inference routes, which cannot serve yet)."""

    status = 503
    error_type = "healthcheck"


class InternalError(ServerError):
    """Anything unexpected: the detail goes to the log, the client gets a fixed text."""

    status = 500
    error_type = "internal"

    def __init__(self):
        super().__init__("Internal server error")


# Transport errors: the request itself (line, headers, body framing) is broken or too slow. The
# gunicorn worker (``http.gunicorn_worker``) answers most before the app sees the request.


class BadRequestError(ServerError):
    """The bytes are not a complete HTTP request: bad header, bad chunk framing, short body."""

    status = 400
    error_type = "bad_request"


class RequestTimeoutError(ServerError):
    status = 408
    error_type = "request_timeout"

    def __init__(self, seconds: float):
        super().__init__(f"Request body not received: no data for {seconds:g} s")


class ExpectationFailedError(ServerError):
    status = 417
    error_type = "expectation_failed"


class UriTooLongError(ServerError):
    status = 414
    error_type = "uri_too_long"


class HeadersTooLargeError(ServerError):
    status = 431
    error_type = "headers_too_large"


class TransferCodingNotImplementedError(ServerError):
    status = 501
    error_type = "not_implemented"


class ShuttingDownError(ServerError):
    """A new request after SIGTERM (in-flight ones finish), or one still running when the
    graceful window is about to end (serving/shutdown)."""

    status = 503
    error_type = "shutting_down"

    def __init__(self):
        super().__init__("Server is shutting down")
