"""A SageMaker endpoint on this machine: the container (``container``: a process run from a Sluice
checkout, see ``checkout``; or ``endpoint``'s docker mode), a sagemaker-runtime API speaking the
real event-stream framing (``runtime``) with, on the same port, the ``sagemaker`` operations moto
lacks (``control_plane``: inference components, adapters, endpoints whose models start here), the
one readiness wait everything local shares
(``health.wait_until_healthy``), the guard that stops a container whose owner died
(``orphan_guard``), and the CLI's foreground serving (``foreground``)."""

from deploy.local.checkout import ENV_CHECKOUT, find_checkout
from deploy.local.container import SERVE, ContainerProcess
from deploy.local.endpoint import LOCAL_RUNTIME_PORT, DockerContainer, LocalEndpoint, local_runtime_session
from deploy.local.foreground import run_local_endpoint, serve_in_foreground
from deploy.local.health import free_port, ping_status, wait_until_healthy
from deploy.local.orphan_guard import OrphanGuard
from deploy.local.runtime import LocalRuntime

__all__ = ["ENV_CHECKOUT", "find_checkout", "SERVE", "ContainerProcess", "LOCAL_RUNTIME_PORT", "DockerContainer",
           "LocalEndpoint", "local_runtime_session", "run_local_endpoint", "serve_in_foreground", "free_port",
           "ping_status", "wait_until_healthy", "OrphanGuard", "LocalRuntime"]
