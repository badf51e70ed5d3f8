"""Typed exceptions of the deploy package.

One exception type per failure a caller can act on, as the SageMaker SDK does: a stream broken by
SageMaker (`ModelStreamError`, with the service's ``ErrorCode``), a service-side failure
(`InternalStreamFailure`), an error the container reported inside a 200 stream (`ContainerError`
and one subclass per TGI ``error_type``), and a stream our parser refuses (`StreamFormatError`).
Deploy-side failures (creating endpoints, waiting for them) belong here too, under `SluiceError`.
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


def container_error(message: str, error_type: str | None) -> ContainerError:
    """The typed exception for an in-band error event; unknown types give a plain ContainerError."""
    cls = CONTAINER_ERRORS.get(error_type or "", ContainerError)
    return cls(message, error_type)
