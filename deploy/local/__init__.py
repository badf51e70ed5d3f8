"""A SageMaker endpoint on this machine: the container (``container``: a process, or ``endpoint``'s
docker mode), a sagemaker-runtime API speaking the real event-stream framing (``runtime``), and
the one readiness wait everything local shares (``health.wait_until_healthy``)."""

from deploy.local.container import SERVE, ContainerProcess
from deploy.local.endpoint import (
    LOCAL_RUNTIME_PORT,
    DockerContainer,
    LocalEndpoint,
    local_runtime_session,
    run_local_endpoint,
)
from deploy.local.health import free_port, ping_status, wait_until_healthy
from deploy.local.runtime import LocalRuntime

__all__ = ["SERVE", "ContainerProcess", "LOCAL_RUNTIME_PORT", "DockerContainer", "LocalEndpoint",
           "local_runtime_session", "run_local_endpoint", "free_port", "ping_status", "wait_until_healthy",
           "LocalRuntime"]
