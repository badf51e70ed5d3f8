"""Typed exceptions of the deploy package.

One exception type per failure a caller can act on, as the SageMaker SDK does: a stream broken by
SageMaker (`ModelStreamError`, with the service's ``ErrorCode``), a service-side failure
(`InternalStreamFailure`), an error the container reported inside a 200 stream (`ContainerError`
and one subclass per TGI ``error_type``), and a stream our parser refuses (`StreamFormatError`).
Deploy-side failures (resolving, deploying, publishing, starting a local container) are here too:
one module, every exception under `SluiceError`, so ``except SluiceError`` catches stream and
deploy failures alike. Messages name the fix, because these surface in notebooks and in the CLI,
where a stack trace is the only documentation the user reads.
"""

from __future__ import annotations


class SluiceError(Exception):
    """Base of every exception raised by the deploy package."""


class StreamError(SluiceError):
    """Base of everything that can end a response stream early."""


class ModelStreamError(StreamError):
    """SageMaker reported that the model's stream failed.

    ``error_code`` is ``StreamBroken`` (the container closed or reset the connection) or
    ``ModelInvocationTimeExceeded``; it is None when boto3 raised the error, because botocore drops
    the ``ErrorCode`` field of exception events.
    """

    def __init__(self, message: str, error_code: str | None = None):
        super().__init__(message)
        self.message = message
        self.error_code = error_code

    def __str__(self) -> str:
        return f"{self.error_code}: {self.message}" if self.error_code else self.message


class InternalStreamFailure(StreamError):
    """SageMaker failed to process the stream for an unknown reason; the request may be retried."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class StreamFormatError(StreamError):
    """The stream contained something that is neither an SSE line nor an NDJSON line.

    Also raised when one line exceeds the parser's bound, so a stream that never sends a newline
    cannot grow the client's memory without limit.
    """


class ContainerError(StreamError):
    """The container sent an in-band ``{"error": ..., "error_type": ...}`` event.

    TGI sends validation and overload errors of a stream, and failures during generation, as the
    last event of an HTTP 200 stream; ``error_type`` is TGI's string (``validation``,
    ``generation``, ``overloaded``, ``incomplete_generation``, ...).
    """

    error_type_name = ""

    def __init__(self, message: str, error_type: str | None = None):
        super().__init__(message)
        self.message = message
        self.error_type = error_type or self.error_type_name


class ValidationError(ContainerError):
    """The request was invalid (TGI ``validation``, HTTP 422 outside a stream)."""

    error_type_name = "validation"


class GenerationError(ContainerError):
    """Generation failed after it started (TGI ``generation``, HTTP 424 outside a stream)."""

    error_type_name = "generation"


class OverloadedError(ContainerError):
    """The container refused the request because it is at capacity (TGI ``overloaded``, 429)."""

    error_type_name = "overloaded"


class IncompleteGenerationError(ContainerError):
    """The container ended generation without a final answer (TGI ``incomplete_generation``)."""

    error_type_name = "incomplete_generation"


CONTAINER_ERRORS = {cls.error_type_name: cls for cls in (
    ValidationError, GenerationError, OverloadedError, IncompleteGenerationError)}


# An OpenAI-style error event without a ``type`` names only its HTTP status (TGI's events do).
ERROR_TYPE_BY_STATUS = {422: "validation", 424: "generation", 429: "overloaded", 500: "incomplete_generation"}


def container_error(message: str, error_type: str | None) -> ContainerError:
    """The typed exception for an in-band error event; unknown types give a plain ContainerError."""
    cls = CONTAINER_ERRORS.get(error_type or "", ContainerError)
    return cls(message, error_type)


# --- deploy-side failures -----------------------------------------------------------------------


class DeployError(SluiceError):
    """Base of everything that can go wrong while resolving, deploying or publishing a model."""


class UnknownModelError(DeployError, KeyError):
    """The model id is not in the catalog; ``close_matches`` lists the ids it was probably meant as."""

    def __init__(self, model_id: str, close_matches: list[str]):
        self.model_id = model_id
        self.close_matches = list(close_matches)
        hint = f" Did you mean: {', '.join(self.close_matches)}?" if self.close_matches else ""
        super().__init__(f"Unknown model id {model_id!r}.{hint} "
                         "List the catalog with `python -m deploy models`.")

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.args[0]


class UnknownVersionError(DeployError, KeyError):
    """The model exists but not in the requested version."""

    def __init__(self, model_id: str, version: str, available: list[str]):
        self.model_id = model_id
        self.version = version
        self.available = list(available)
        super().__init__(f"Model {model_id!r} has no version {version!r}; "
                         f"available: {', '.join(self.available)} (or '*' for the latest).")

    def __str__(self) -> str:
        return self.args[0]


class MissingConfigurationError(DeployError):
    """A value deploy needs (role, model data location, local model dir) was not given anywhere."""


class EndpointFailedError(DeployError):
    """The endpoint reached ``Failed``; ``failure_reason`` is SageMaker's ``FailureReason``."""

    def __init__(self, endpoint_name: str, failure_reason: str | None):
        self.endpoint_name = endpoint_name
        self.failure_reason = failure_reason
        super().__init__(f"Endpoint {endpoint_name!r} failed: "
                         f"{failure_reason or 'SageMaker gave no FailureReason'}")


class EndpointTimeoutError(DeployError):
    """The endpoint did not reach ``InService`` within the waiter's timeout (it may still do so)."""

    def __init__(self, endpoint_name: str, status: str, timeout: float):
        self.endpoint_name = endpoint_name
        self.status = status
        self.timeout = timeout
        super().__init__(f"Endpoint {endpoint_name!r} still {status!r} after {timeout:g} s; "
                         "it keeps creating in the background: check DescribeEndpoint or "
                         "delete it with `python -m deploy delete`.")


class FilterSyntaxError(DeployError, ValueError):
    """A filter string could not be parsed (e.g. no operator between key and value)."""


class ContainerStartError(DeployError, RuntimeError):
    """A local container exited or never became healthy; the message carries the tail of its log."""


class LocalPortError(DeployError, OSError):
    """A local endpoint cannot listen on its runtime port (in use, or not a TCP port); an ``OSError``
    too, which is what binding raised before it was named."""
