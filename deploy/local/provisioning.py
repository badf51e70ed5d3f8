"""Start the container of a SageMaker Model on this machine, as SageMaker does for an endpoint.

SageMaker stages the model's data at ``/opt/ml/model`` and runs the image with the model's
environment. Locally the data is fetched into a directory (`fetch_artifact`: an S3 prefix or a
``model.tar.gz``, from the S3 the boto3 session reaches, which is moto in the tests) and the
Sluice container runs as a process with ``HF_MODEL_ID`` pointing there. A model whose weights come
from the Hugging Face Hub cannot run here (no hub at run time): that is a clear failure reason.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from deploy.artifacts import fetch_artifact
from deploy.local.container import ContainerProcess

CONTAINER_MODEL_DIR = "/opt/ml/model"


class ProvisioningError(Exception):
    """Why a model cannot run locally; becomes the endpoint's or component's FailureReason."""


def model_data_url(container: dict) -> str | None:
    source = (container.get("ModelDataSource") or {}).get("S3DataSource") or {}
    return source.get("S3Uri") or container.get("ModelDataUrl")


def primary_container(model: dict) -> dict:
    """The container definition of a DescribeModel answer (one container: Sluice's)."""
    container = model.get("PrimaryContainer") or (model.get("Containers") or [None])[0]
    if not container:
        raise ProvisioningError(f"model {model.get('ModelName')} has no container")
    return container


class ModelContainer:
    """A model's data staged in a temporary directory and its container process; ``stop()`` removes both."""

    def __init__(self, model: dict, s3_client=None, checkout: str | os.PathLike | None = None,
                 ready_timeout: float = 300.0):
        self.model, self.s3_client, self.checkout = model, s3_client, checkout
        self.ready_timeout = ready_timeout
        self.work_dir: Path | None = None
        self.process: ContainerProcess | None = None

    @property
    def url(self) -> str | None:
        return self.process.url if self.process else None

    def environment(self, container: dict) -> dict[str, str]:
        env = dict(container.get("Environment") or {})
        hf_model_id = env.get("HF_MODEL_ID", CONTAINER_MODEL_DIR)
        if hf_model_id != CONTAINER_MODEL_DIR and not Path(hf_model_id).is_dir():
            raise ProvisioningError(
                f"model {self.model.get('ModelName')} downloads {hf_model_id} from the Hugging Face Hub, which a "
                "local endpoint does not reach: give it model data (ModelDataSource or ModelDataUrl) with "
                f"HF_MODEL_ID={CONTAINER_MODEL_DIR}")
        env.pop("HF_MODEL_ID", None)  # ContainerProcess points it at the staged directory
        return env

    def start(self) -> "ModelContainer":
        """Stage the data, start the container and wait for ``/ping``; raises ProvisioningError."""
        container = primary_container(self.model)
        url = model_data_url(container)
        if url is None:
            raise ProvisioningError(f"model {self.model.get('ModelName')} has no model data to serve")
        self.work_dir = Path(tempfile.mkdtemp(prefix="sluice-model-"))
        try:
            model_dir = fetch_artifact(url, self.work_dir, self.s3_client)
            env = self.environment(container)
            self.process = ContainerProcess(model_dir, env=env, checkout=self.checkout).start()
            self.process.wait_ready(self.ready_timeout)
        except ProvisioningError:
            self.stop()
            raise
        except Exception as error:  # noqa: BLE001 - any failure is the endpoint's failure reason
            self.stop()
            raise ProvisioningError(f"{type(error).__name__}: {error}") from error
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None
        if self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self.work_dir = None
