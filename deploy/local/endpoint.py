"""A SageMaker endpoint on this machine: the Sluice container plus a local runtime API.

`LocalEndpoint` lets the code users write for a real endpoint (``boto3`` ``invoke_endpoint`` /
``invoke_endpoint_with_response_stream`` + `TokenIterator`) run unchanged against a local model,
for development, notebooks and end-to-end tests. The container runs as a process
(``container/serve`` of a Sluice checkout, exactly as SageMaker starts it) or, when asked, as
``docker run IMAGE serve``. Either way an `OrphanGuard` stops it if this process dies first.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from deploy.errors import ContainerStartError
from deploy.local.container import ContainerProcess
from deploy.local.health import free_port, port_refusal, wait_until_healthy
from deploy.local.orphan_guard import OrphanGuard
from deploy.local.runtime import LocalRuntime

DEFAULT_ENDPOINT_NAME = "sluice-local"
DEFAULT_REGION = "us-east-1"
LOCAL_RUNTIME_PORT = 8081  # `make serve` has 8080; the container behind the runtime takes a free port
# The local runtime checks no signature, but boto3 refuses to sign without credentials and a region.
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
RUNTIME_URL_VARIABLES = ("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "AWS_ENDPOINT_URL")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
CONTAINER_MODEL_DIR = "/opt/ml/model"


class DockerContainer:
    """``docker run IMAGE serve`` with the model mounted where SageMaker mounts it.

    Host networking keeps the URL ``127.0.0.1:PORT`` the same as the process mode's. Same
    interface as `ContainerProcess`: ``start``, ``wait_ready``, ``url``, ``stop``.
    """

    def __init__(self, model_dir: str | os.PathLike, image: str, port: int | None = None,
                 env: dict[str, str] | None = None):
        self.model_dir = Path(model_dir).resolve()
        self.image = image
        self.port = port or free_port()
        self.env = {"HF_MODEL_ID": CONTAINER_MODEL_DIR, **(env or {}),
                    "SAGEMAKER_BIND_TO_PORT": str(self.port)}
        self.name = f"sluice-local-{uuid.uuid4().hex[:8]}"
        self.proc: subprocess.Popen | None = None
        self._guard: OrphanGuard | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = ["docker", "run", "--rm", "--name", self.name, "--network", "host",
               "-v", f"{self.model_dir}:{CONTAINER_MODEL_DIR}:ro"]
        for key, value in self.env.items():
            cmd += ["-e", f"{key}={value}"]
        return cmd + [self.image, "serve"]

    def start(self) -> "DockerContainer":
        self.proc = subprocess.Popen(self.command())
        # A killed `docker run` client leaves its container running: only `docker stop` ends it.
        self._guard = OrphanGuard.for_command(["docker", "stop", "--time", "30", self.name])
        return self

    def wait_ready(self, timeout: float = 600.0) -> "DockerContainer":
        def exited() -> str | None:
            if self.proc is not None and self.proc.poll() is not None:
                return f"docker run exited with {self.proc.returncode} ({self.name})"
            return None

        wait_until_healthy(self.url, timeout, exited=exited)
        return self

    def stop(self, timeout: float = 30.0) -> int | None:
        """``docker stop`` sends SIGTERM, then SIGKILL after ``timeout``, as SageMaker does."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            subprocess.run(["docker", "stop", "--time", str(int(timeout)), self.name],
                           capture_output=True, check=False)
            self.proc.wait()
        if self._guard is not None:
            self._guard.release()
            self._guard = None
        return self.proc.returncode


class LocalEndpoint:
    """Start a container and a local sagemaker-runtime API that routes ``endpoint_name`` to it.

    >>> with LocalEndpoint("model/") as endpoint:
    ...     client = endpoint.client()
    ...     response = client.invoke_endpoint_with_response_stream(
    ...         EndpointName=endpoint.endpoint_name, Body=b'{"inputs": "Hi", "stream": true}',
    ...         ContentType="application/json")
    ...     print("".join(TokenIterator(response["Body"])))
    """

    def __init__(self, model_dir: str | os.PathLike, endpoint_name: str = DEFAULT_ENDPOINT_NAME,
                 use_docker: bool = False, image: str | None = None,
                 env: dict[str, str] | None = None, runtime_port: int = 0,
                 region: str = DEFAULT_REGION, ready_timeout: float = 300.0,
                 container_port: int | None = None, checkout: str | os.PathLike | None = None):
        """``checkout``: the Sluice checkout whose ``container/serve`` runs the model (default
        ``$SLUICE_CHECKOUT``, or the checkout this package is imported from); docker mode needs none."""
        if use_docker and not image:
            raise ValueError("use_docker=True needs image=")
        self.endpoint_name = endpoint_name
        self.region = region
        self.ready_timeout = ready_timeout
        self.container = (DockerContainer(model_dir, image, port=container_port, env=env) if use_docker
                          else ContainerProcess(model_dir, port=container_port, env=env, checkout=checkout))
        self.runtime = LocalRuntime(port=runtime_port, region=region)

    @property
    def container_url(self) -> str:
        return self.container.url

    @property
    def runtime_url(self) -> str:
        return self.runtime.url

    def start(self) -> "LocalEndpoint":
        refusal = port_refusal(self.container.port)
        if refusal:  # else the server already there answers /ping and is taken for the container
            self.runtime.stop()
            raise ContainerStartError(f"{refusal}: the container needs a free port (container_port=, "
                                      "--container-port); leave it out for a free one")
        self.container.start()
        try:
            self.container.wait_ready(self.ready_timeout)
            self.runtime.add_endpoint(self.endpoint_name, self.container.url)
            self.runtime.start()
        except BaseException:
            self.container.stop()
            self.runtime.stop()
            raise
        return self

    def stop(self) -> None:
        self.runtime.stop()
        self.container.stop()

    def client_environment(self) -> dict[str, str]:
        """What a process exports to reach this endpoint with unmodified boto3 or SDK code: both
        endpoint URLs (runtime and control plane), dummy credentials and the region."""
        return {"AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": self.runtime_url, "AWS_ENDPOINT_URL_SAGEMAKER": self.runtime_url,
                **DUMMY_CREDENTIALS, "AWS_DEFAULT_REGION": self.region}

    def client(self, service: str = "sagemaker-runtime", **config):
        """A real boto3 client pointed at this endpoint (dummy credentials): ``sagemaker-runtime``,
        or ``"sagemaker"`` for its control plane (inference components).

        ``config`` goes to ``botocore.config.Config`` (e.g. ``read_timeout``).
        """
        import boto3
        from botocore.config import Config

        settings = {"retries": {"total_max_attempts": 1}, "read_timeout": 120, **config}
        return boto3.client(service, endpoint_url=self.runtime_url,
                            region_name=self.region,
                            aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                            config=Config(**settings))

    def __enter__(self) -> "LocalEndpoint":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def local_runtime_session(region: str | None = None):
    """A boto3 session for a loopback runtime URL in the environment, else None.

    Dummy credentials and a default region, never the credential chain: trying the local endpoint
    must not need an AWS account, and the chain would probe the instance metadata service.
    """
    import boto3

    url = next((os.environ[name] for name in RUNTIME_URL_VARIABLES if os.environ.get(name)), "")
    if urlsplit(url).hostname not in LOOPBACK_HOSTS:
        return None
    region = region or boto3.Session().region_name or DEFAULT_REGION
    return boto3.Session(aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                         aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                         region_name=region)
