# Landslide SAR mapper. `make demo` and `make test` install what is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

SYSTEM_PYTHON := /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp
# qgis brings qgis_process (headless Processing); python3-qgis the bindings.
APT_PACKAGES := python3-qgis qgis-providers qgis python3-venv python3-scipy python3-numpy
SAMPLE := landslide_sar_plugin/sample_data
SAMPLE_SEED := 20180906
SAMPLE_EVENT := 2018-09-05T18:07:59Z
OUT ?= out/demo
export QT_QPA_PLATFORM ?= offscreen

.PHONY: help setup demo test test-unit test-qgis bench bench-real bench-model bench-loop tune-defaults package lint sample calibration screenshot train-demo clean

help:
	@echo "make demo     install what is missing, detect landslides on the synthetic sample scene"
	@echo "make test     install what is missing, run the whole test suite"
	@echo "make setup    install QGIS (Debian) if needed and the Python packages into $(VENV)"
	@echo "make bench    run the benchmarks, write JSON reports in bench/"
	@echo "make bench-real  real-background benchmark (real OPERA stacks, imprinted slides): A_ratio, then the model beside it"
	@echo "make bench-model  the shipped model's inference time on the 2346 x 3842 grid against the model it replaced"
	@echo "make bench-loop  detect -> scripted review (west half) -> python -m training retrain -> detect; F1 east half"
	@echo "make package  build the plugin zip for the QGIS plugin repository (dist/)"
	@echo "make lint     ruff on everything, bandit on the plugin package"
	@echo "make sample   regenerate the sample scene byte for byte"
	@echo "make calibration  simulator vs real OPERA RTC-S1 stacks: table in out/calibration/ (needs ../shared/realdata)"
	@echo "make screenshot  screenshot of the dock after a run on the sample scene (docs/dock.png)"
	@echo "make train-demo  train the shipped ONNX model from scratch (simulated + real-background chips; CPU, ~35-45 min)"

# QGIS comes from Debian and lives in the system Python; the venv sees it through
# --system-site-packages. Nothing is reinstalled when the stamp is newer than the pins.
setup: $(STAMP)

$(STAMP): tests/requirements.txt tests/constraints.txt
	@if ! $(SYSTEM_PYTHON) -c "import qgis.core, venv, scipy" >/dev/null 2>&1 || ! command -v qgis_process.bin >/dev/null; then \
	  echo "Installing QGIS from Debian ($(APT_PACKAGES))..."; \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO="sudo"; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null || \
	  { echo "error: could not install QGIS with apt-get (run as root or with sudo)"; exit 1; }; \
	fi
	@[ -x $(PY) ] || $(SYSTEM_PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c tests/constraints.txt -r tests/requirements.txt
	@$(PY) -c "import qgis.core, rasterio, scipy, onnxruntime, ee, numpy; print('environment ready: numpy', numpy.__version__, 'rasterio', rasterio.__version__)"
	@touch $(STAMP)

demo: setup
	$(PY) -m landslide_sar_plugin detect --scenes $(SAMPLE)/scenes --dem $(SAMPLE)/dem.tif \
	  --event $(SAMPLE_EVENT) --event-id sample_synthetic_$(SAMPLE_SEED) \
	  --truth $(SAMPLE)/truth/truth_mask.tif --preview --out $(OUT)

test: setup
	$(PY) -m pytest tests $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-qgis: setup
	$(PY) -m pytest tests/qgis $(PYTEST_ARGS)

bench: setup
	$(PY) tests/bench/bench_engine.py --out bench/report.json
	$(PY) tests/bench/bench_slider.py --out bench/slider.json
	$(PY) tests/bench/bench_inference.py --out bench/inference.json --int8

# Needs the real stacks: ../shared/realdata (beside the clone in CI) or REAL=DIR.
REAL ?= ../shared/realdata/opera_rtc_s1_california_t137
bench-real: setup
	$(PY) tests/bench/bench_real.py --real $(REAL) --out bench/real.json
	$(PY) tests/bench/bench_real_model.py --real $(REAL) --out bench/real_model.json

bench-model: setup
	$(PY) tests/bench/bench_model.py --out bench/model.json

# Not part of `make test`: a benchmark (minutes on 2 cores). The real-background events need ../shared/realdata
# (or LANDSLIDE_SAR_REAL_DATA=DIR).
LOOP_EVENTS ?= altgen:0,altgen:1,simulator:0,real_background:0,real_background:1
bench-loop: setup
	$(PY) tests/bench/bench_loop.py --events $(LOOP_EVENTS) --reviews 10,25,50 --out bench/loop.json --work out/bench_loop

tune-defaults: setup
	$(PY) tests/tools/tune_defaults.py --real $(REAL) --out bench/tune_defaults.json

package: setup
	$(PY) .ci/package_plugin.py --out dist

lint: setup
	$(PY) -m ruff check --config .ci/ruff.toml landslide_sar_plugin training tests .ci
	$(PY) -m bandit -q -r landslide_sar_plugin -c .ci/bandit.yaml

sample: setup
	$(PY) -m landslide_sar_plugin simulate --preset sample --seed $(SAMPLE_SEED) --out $(SAMPLE)

REALDATA ?= ../shared/realdata
calibration: setup
	$(PY) -m landslide_sar_plugin calibrate --real $(REALDATA)/opera_rtc_s1_california_t137 \
	  --published $(REALDATA)/statistics --tuning T137-292319-IW2,T137-292321-IW2 --out out/calibration \
	  --reference-out landslide_sar_plugin/core/simulate/real_calibration.json

train-demo: setup
	$(PY) -m training train-demo --out landslide_sar_plugin/models

screenshot: setup
	$(PY) tests/tools/screenshot_dock.py --out docs/dock.png

clean:
	rm -rf out dist bench .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
