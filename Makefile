# Sluice: the public entry points. Keep target names and arguments stable (users and outside
# checks call them): install, model SIZE=... MODEL_DIR=..., serve, test, bench.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SIZE ?= tiny
MODEL_DIR ?= models/$(SIZE)
PORT ?= 8080

.PHONY: install model serve local test bench bench-quick docker-test

install: $(STAMP)

$(STAMP): requirements/runtime.txt requirements/dev.txt requirements/torch-cpu.txt requirements/no-deps.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { echo "make: cannot create $(VENV): on Debian/Ubuntu, apt-get install python3-venv" >&2; exit 1; }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/dev.txt
	$(PY) -m pip install -q --no-deps -r requirements/no-deps.txt
	@touch $@

model: install
	$(PY) -m demo.build_model --size $(SIZE) --out $(MODEL_DIR)

serve: install
	@test -f $(MODEL_DIR)/config.json || $(MAKE) --no-print-directory model SIZE=$(SIZE) MODEL_DIR=$(MODEL_DIR)
	HF_MODEL_ID=$(abspath $(MODEL_DIR)) SAGEMAKER_BIND_TO_PORT=$(PORT) PATH=$(abspath $(VENV))/bin:$$PATH container/serve

# A local endpoint for the real boto3 client (sagemaker-runtime API on PORT, endpoint sluice-local).
local: install
	@test -f $(MODEL_DIR)/config.json || $(MAKE) --no-print-directory model SIZE=$(SIZE) MODEL_DIR=$(MODEL_DIR)
	$(PY) -m deploy local --model-dir $(MODEL_DIR) --port $(PORT)

test: install
	$(PY) -m pytest -q

# The image and its SageMaker contract checks, with a local Docker engine and no registry.
docker-test: install
	SLUICE_DOCKER_INSTALL=1 PYTHON=$(abspath $(PY)) docker/build-image.sh
	$(PY) -m pytest -q -m docker

bench: install
	$(PY) -m pip install -q -r requirements/bench.txt
	$(PY) bench/run.py --out bench/results/latest.json

bench-quick: install
	$(PY) bench/run.py --quick --skip-transformers-serve --out bench/results/quick.json

# Runs the streaming notebook end to end on a local endpoint with the tiny demo model (built into
# MODEL_DIR only if missing); the executed copy, with outputs, goes to .cache/notebooks/.
.PHONY: notebook
notebook: install
	@test -f $(MODEL_DIR)/config.json || $(MAKE) --no-print-directory model SIZE=$(SIZE) MODEL_DIR=$(MODEL_DIR)
	@mkdir -p .cache/notebooks
	SLUICE_MODEL_DIR=$(abspath $(MODEL_DIR)) $(VENV)/bin/jupyter-execute --kernel_name=python3 \
	  --output=../.cache/notebooks/{notebook_name} notebooks/sluice_streaming.ipynb
