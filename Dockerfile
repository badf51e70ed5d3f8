# Sluice: a SageMaker inference container that serves open LLMs with TGI's wire protocol.
# SageMaker starts it as `docker run IMAGE serve` with the model mounted at /opt/ml/model.
#
# Production base: a CUDA runtime (the driver comes from the host through the NVIDIA container
# toolkit, never from the image). No registry is reachable on the development machines, so
# docker/build-image.sh passes --build-arg BASE_IMAGE=<a locally built Debian bookworm image>.
ARG BASE_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04
FROM ${BASE_IMAGE}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Python from the base image when it has one (the local base does), else from its distribution.
# A virtualenv keeps pip away from the distribution's externally managed site-packages.
RUN if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then \
      apt-get update \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3 -m venv /opt/venv

ENV PATH=/opt/program:/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_MODEL_ID=/opt/ml/model

# Dependencies before code, biggest and stablest first, so that editing container/ (or even
# runtime.txt) reuses the torch layer. Installs from docker/wheelhouse when it holds wheels.
COPY docker/pip-install.sh /usr/local/bin/sluice-pip-install
COPY docker/wheelhouse/ /tmp/wheelhouse/
# The default resolves to PyPI's CUDA build of torch; the local harness's wheelhouse holds the
# CPU build of the same version.
ARG TORCH_REQUIREMENT=torch==2.13.0
RUN sluice-pip-install "${TORCH_REQUIREMENT}"
COPY requirements/runtime.txt requirements/vllm-cuda.txt /tmp/requirements/
# vLLM's CUDA build is the production engine (SLUICE_ENGINE=auto: vllm when CUDA is present). Its
# torchvision/torchaudio wheels are only for multimodal models and break transformers' import
# when they do not match torch, so they go. The local CPU harness builds with SLUICE_WITH_VLLM=0.
ARG SLUICE_WITH_VLLM=1
RUN sluice-pip-install -r /tmp/requirements/runtime.txt \
    && if [ "${SLUICE_WITH_VLLM}" = 1 ]; then \
      sluice-pip-install -r /tmp/requirements/vllm-cuda.txt \
      && pip uninstall -y -q torchvision torchaudio torchcodec; \
    fi

# The server: `serve` (gunicorn launcher), inference.py and the sluice package. No model weights:
# SageMaker mounts them at /opt/ml/model.
COPY container/ /opt/program/
WORKDIR /opt/program

EXPOSE 8080
LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true
# Exec form, no tini: signals go straight to `serve`, which execs gunicorn (graceful on SIGTERM).
# SageMaker appends `serve` as an argument; container/serve accepts and ignores it.
ENTRYPOINT ["serve"]
