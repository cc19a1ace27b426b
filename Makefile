# The two commands a newcomer needs: `make test` and (from the operator issue on) `make demo`.
# Both set everything up themselves: a virtualenv, Python packages, the control-plane binaries.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The slowest tests named at the end of every run: `make test` has to stay within CI's 90 minutes.
PYTEST_ARGS ?= --durations=30

.PHONY: all test unit integration properties faults kill fuzz crds check-crds chart lint control-plane monitoring-crds promtool helm chromium control-plane-up nova-lab pacemaker-lab demo bench clean

all: test

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,lint]'
	touch $@

## Build (or find in the cache) kube-apiserver, kubectl and etcd from Go modules.
control-plane:
	bash hack/control-plane/build.sh

## The Prometheus Operator's ServiceMonitor and PrometheusRule CRDs, from its Go module, into
## the cache: the integration tests apply deploy/monitoring/ with them.
monitoring-crds:
	bash hack/control-plane/monitoring-crds.sh >/dev/null

## Helm, built from its Go module into the cache (the chart's tests run it).
helm:
	bash hack/helm/build.sh >/dev/null

## promtool, which checks and unit-tests the alert rules (as root: Debian's prometheus package).
## Not root and not installed: fails, since those tests must run wherever `make test` runs.
promtool:
	bash hack/promtool/install.sh

## Chromium, headless, in which the report page test renders and photographs the page (as root:
## Debian's chromium package). Not root and not installed: that test fails.
chromium:
	bash hack/chromium/install.sh

## Start etcd + kube-apiserver on loopback with the CRDs installed; Ctrl-C stops and cleans up.
control-plane-up: $(BIN)/.installed control-plane
	$(BIN)/python -m tests.harness.control_plane up

## Install what the real-Nova tier runs (as root: MariaDB and RabbitMQ from Debian, Nova,
## Placement and Glance venvs in ~/.cache/masakari-operator/nova-lab/, and Masakari 22 for its
## functional tests, our conformance suite, and the real masakari-api that the import test reads,
## in .../masakari-functional/). Fast when done.
## Not root: nothing is installed and the real_nova tests fail unless deselected.
nova-lab:
	@if [ "$$(id -u)" = 0 ]; then bash hack/nova-lab/install.sh && \
	  bash hack/masakari-functional/install.sh >/dev/null; else \
	  echo "nova-lab: not root, so not installed; the real_nova tests will fail" \
	    "(deselect them with PYTEST_ARGS='-m \"not real_nova\"')" >&2; fi

## Install the Pacemaker tier's packages (as root: Corosync, Pacemaker, crmsh, pcs,
## fence-agents from Debian; pacemaker-remoted unpacked beside them). Fast when done.
## Not root: nothing is installed and the pacemaker tests fail unless deselected.
pacemaker-lab:
	@if [ "$$(id -u)" = 0 ]; then bash hack/pacemaker-lab/install.sh; else \
	  echo "pacemaker-lab: not root, so not installed; the pacemaker tests will fail" \
	    "(deselect them with PYTEST_ARGS='-m \"not pacemaker\"')" >&2; fi

## A host of a simulated cloud dies and the operator recovers it, live (KEEP=1 keeps it up).
demo: $(BIN)/.installed control-plane
	$(BIN)/python hack/demo/demo.py $(if $(KEEP),--keep)

## Issue 12's figures in one run; each part writes JSON + SVG under bench/results/, then
## bench/report.py prints one table, rewrites the README's performance table and renders PNGs.
## Root (the labs). The parts, in PARTS (default all three):
##   nova       real Nova 34: the operator, real Masakari 22 (API + engine), the raw evacuate
##              calls; N = 3 and 30, five rounds interleaved, one observer polling Nova (16 min here)
##   pacemaker  20 SIGKILLed Pacemaker nodes: to OFFLINE, fencing confirmed, FailureEvent
##   sim        100 servers on the simulator, 2 s per evacuation, concurrency 3, 10, 50
## NOVA_ARGS (or BENCH_ARGS), PACEMAKER_ARGS, SIM_ARGS change or shorten a part, e.g.
## make bench PARTS=sim SIM_ARGS="--instances 20 --concurrency 10".
PARTS ?= nova pacemaker sim
NOVA_ARGS ?= $(BENCH_ARGS)
PACEMAKER_ARGS ?= --runs 20
SIM_ARGS ?=
bench: $(BIN)/.installed control-plane $(if $(filter nova,$(PARTS)),nova-lab) \
    $(if $(filter pacemaker,$(PARTS)),pacemaker-lab) $(if $(filter 0,$(shell id -u)),chromium)
	set -e; for part in $(PARTS); do case $$part in \
	  nova) $(BIN)/python bench/side_by_side.py $(NOVA_ARGS) ;; \
	  pacemaker) $(BIN)/python bench/hostmonitor_detection.py --alerts $(PACEMAKER_ARGS) ;; \
	  sim) $(BIN)/python bench/host_recovery.py $(SIM_ARGS) ;; \
	  *) echo "make bench: unknown part $$part (nova, pacemaker, sim)" >&2; exit 2 ;; \
	esac; done
	$(BIN)/python bench/report.py

## Every test tier that this machine can run.
test: $(BIN)/.installed control-plane monitoring-crds helm promtool chromium nova-lab pacemaker-lab
	$(BIN)/pytest $(PYTEST_ARGS)

unit: $(BIN)/.installed promtool
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: $(BIN)/.installed control-plane monitoring-crds helm chromium
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

## The safety invariants' property test at length (make test runs 100 examples of it).
properties: $(BIN)/.installed
	MASAKARI_PROPERTY_EXAMPLES=$(or $(EXAMPLES),2000) $(BIN)/pytest \
	  tests/unit/test_safety_properties.py --hypothesis-show-statistics $(PYTEST_ARGS)

## Hostile input at length (make test runs a short sample): schemathesis over every route of
## the API's own OpenAPI document, links included (EXAMPLES per operation and mode), and
## hypothesis over the document's rules, crm_mon's output and the alert socket (UNIT_EXAMPLES
## per property), and the custom resources against the API server (CR_EXAMPLES per kind).
## Prints requests sent, 5xx, mismatches and crashes.
fuzz: $(BIN)/.installed control-plane
	MASAKARI_FUZZ_EXAMPLES=$(or $(EXAMPLES),100) \
	MASAKARI_FUZZ_UNIT_EXAMPLES=$(or $(UNIT_EXAMPLES),5000) \
	MASAKARI_FUZZ_CR_EXAMPLES=$(or $(CR_EXAMPLES),1000) $(BIN)/pytest -s \
	  tests/integration/test_api_fuzz.py tests/unit/test_api_openapi_fuzz.py \
	  tests/unit/test_api_input_fuzz.py tests/integration/test_cr_fuzz.py \
	  tests/unit/test_pacemaker_fuzz.py $(PYTEST_ARGS)

## The fault matrix at length (make test runs a short sample of it): three recoveries per row
## and the full periods (API server and Nova 60 s, the network to Nova 30 s). Prints a line of
## figures per row, the table of docs/reliability.md.
faults: $(BIN)/.installed control-plane
	MASAKARI_FAULTS=full $(BIN)/pytest -s tests/integration/test_faults.py $(PYTEST_ARGS)

## The operator SIGKILLed mid-recovery at length (make test runs a sample): at each step,
## reserved host taken, fallback and instance started or landed of every recovery method, and
## at RUNS (200) random moments. SEED=n replays a run's draws (the seed is printed). Prints a
## line of figures per method, docs/reliability.md.
kill: $(BIN)/.installed control-plane
	MASAKARI_FAULTS=full MASAKARI_KILL_RUNS=$(or $(RUNS),200) MASAKARI_KILL_SEED=$(SEED) \
	  $(BIN)/pytest -s tests/integration/test_faults_kill.py $(PYTEST_ARGS)

## Regenerate crds/ from the resource models, and the Helm chart's copy of them.
crds: $(BIN)/.installed control-plane
	$(BIN)/masakari-operator crds --output-dir crds
	$(BIN)/python hack/helm/chart.py

## Regenerate charts/masakari-operator/ from deploy/ and crds/ (a test fails when they drift).
chart: $(BIN)/.installed control-plane
	$(BIN)/python hack/helm/chart.py

check-crds: $(BIN)/.installed
	$(BIN)/masakari-operator crds --output-dir crds --check

lint: $(BIN)/.installed
	$(BIN)/ruff check controller tests
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
