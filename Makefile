# The two commands a newcomer needs: `make test` and (from the operator issue on) `make demo`.
# Both set everything up themselves: a virtualenv, Python packages, the control-plane binaries.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: all test unit integration crds check-crds lint control-plane control-plane-up clean

all: test

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,lint]'
	touch $@

## Build (or find in the cache) kube-apiserver, kubectl and etcd from Go modules.
control-plane:
	bash hack/control-plane/build.sh

## Start etcd + kube-apiserver on loopback with the CRDs installed; Ctrl-C stops and cleans up.
control-plane-up: $(BIN)/.installed control-plane
	$(BIN)/python -m tests.harness.control_plane up

## Every test tier that this machine can run.
test: $(BIN)/.installed control-plane
	$(BIN)/pytest $(PYTEST_ARGS)

unit: $(BIN)/.installed
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: $(BIN)/.installed control-plane
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

## Regenerate crds/ from the resource models.
crds: $(BIN)/.installed
	$(BIN)/masakari-operator crds --output-dir crds

check-crds: $(BIN)/.installed
	$(BIN)/masakari-operator crds --output-dir crds --check

lint: $(BIN)/.installed
	$(BIN)/ruff check controller tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
