"""Wait for a SageMaker endpoint to become ``InService``, failing loudly with its FailureReason.

boto3's built-in ``endpoint_in_service`` waiter reports a failed endpoint as "Waiter encountered a
terminal failure state", without SageMaker's ``FailureReason`` (the one line that says *why*: a
bad image, a health check that never passed, a capacity error). This poller returns the reason
in the exception, and its poll interval and clock are parameters so tests do not sleep.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from deploy.errors import EndpointFailedError, EndpointTimeoutError

log = logging.getLogger(__name__)

IN_SERVICE = "InService"
FAILED = "Failed"


def wait_for_endpoint(sagemaker_client, endpoint_name: str, poll_interval: float = 15.0,
                      timeout: float = 3600.0,
                      sleep: Callable[[float], None] = time.sleep,
                      clock: Callable[[], float] = time.monotonic) -> dict:
    """Poll DescribeEndpoint until InService and return the last description.

    Raises EndpointFailedError (with ``failure_reason``) on ``Failed`` and EndpointTimeoutError
    when ``timeout`` seconds pass first; the endpoint is left as it is in both cases.
    """
    deadline = clock() + timeout
    while True:
        description = sagemaker_client.describe_endpoint(EndpointName=endpoint_name)
        status = description["EndpointStatus"]
        if status == IN_SERVICE:
            return description
        if status == FAILED:
            raise EndpointFailedError(endpoint_name, description.get("FailureReason"))
        remaining = deadline - clock()
        if remaining <= 0:
            raise EndpointTimeoutError(endpoint_name, status, timeout)
        log.info("endpoint %s is %s; polling again in %.0f s", endpoint_name, status, poll_interval)
        sleep(min(poll_interval, remaining))
