"""Typed exceptions for the AWS side of the deploy package (catalog, deploy, publish).

One type per failure a caller can act on, all under `SluiceError` so ``except SluiceError`` catches
stream and deploy failures alike. Messages name the fix, because these surface in notebooks and in
the CLI, where a stack trace is the only documentation the user reads.
"""

from __future__ import annotations

from deploy.errors import SluiceError


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
