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

.PHONY: help setup demo test test-unit test-qgis bench bench-engine bench-unet bench-unet-accuracy bench-slider bench-review \
	bench-startup bench-compression bench-inference bench-baseline bench-real bench-model bench-loop tune-defaults package \
	lint sample calibration screenshot train-demo install-dev clean

help:
	@echo "make demo     install what is missing, detect landslides on the synthetic sample scene"
	@echo "make test     install what is missing, run the whole test suite"
	@echo "make setup    install QGIS (Debian) if needed and the Python packages into $(VENV)"
	@echo "make bench    run the benchmarks, write JSON reports in bench/ (BASELINE=<commit> compares against it)"
	@echo "make bench-engine | bench-unet | bench-slider | bench-review | bench-startup | bench-compression | bench-unet-accuracy"
	@echo "make bench-real  real-background benchmark (real OPERA stacks, imprinted slides): A_ratio, then the model beside it"
	@echo "make bench-model  the shipped model's inference time on the 2346 x 3842 grid against the model it replaced"
	@echo "make bench-loop  detect -> scripted review (west half) -> python -m training retrain -> detect; F1 east half"
	@echo "make package  build the plugin zip for the QGIS plugin repository (dist/)"
	@echo "make install-dev  link this checkout into a QGIS profile (QGIS_PROFILE=dir, default: the default profile)"
	@echo "make lint     ruff on everything; the plugin repository's scan (bandit, detect-secrets, flake8) on the zip"
	@echo "make sample   regenerate the sample scene byte for byte"
	@echo "make calibration  simulator vs real OPERA RTC-S1 stacks: table in out/calibration/ (needs ../shared/realdata)"
	@echo "make screenshot  screenshots of the dock after a run on the sample scene and of the review queue (docs/)"
	@echo "make train-demo  train the shipped ONNX model from scratch (simulated + real-background chips; CPU, ~20-45 min)"

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

# BASELINE=<commit> (e.g. the commit a change started from) is exported into bench/baseline-<commit> and run
# in the same, interleaved benchmark (engine, U-Net): speed-ups are ratios measured within one run.
BASELINE ?=
BASELINE_DIR := bench/baseline-$(BASELINE)
BASELINE_ARG := $(if $(BASELINE),--baseline-root $(BASELINE_DIR),)
REPEATS ?= 3

bench: bench-startup bench-compression bench-slider bench-review bench-unet bench-engine

bench-baseline:
	@if [ -n "$(BASELINE)" ] && [ ! -d "$(BASELINE_DIR)" ]; then \
	  mkdir -p $(BASELINE_DIR) && git archive $(BASELINE) | tar -x -C $(BASELINE_DIR); fi

bench-engine: setup bench-baseline
	$(PY) tests/bench/bench_engine.py --out bench/report.json --repeats $(REPEATS) $(BASELINE_ARG)

bench-unet: setup bench-baseline
	$(PY) tests/bench/bench_unet.py --out bench/unet.json --repeats $(REPEATS) $(BASELINE_ARG)

bench-unet-accuracy: setup
	$(PY) tests/bench/bench_unet_accuracy.py --out bench/unet_accuracy.json --int8

bench-slider: setup
	$(PY) tests/bench/bench_slider.py --out bench/slider.json

# The review queue's Next / Previous / Accept beside a QgsMapCanvas with 5,000 polygons (goal p95 < 100 ms).
bench-review: setup
	$(PY) tests/bench/bench_review.py --out bench/review.json

bench-startup: setup
	$(PY) tests/bench/bench_startup.py --out bench/startup.json

bench-compression: setup
	$(PY) tests/bench/bench_compression.py --out bench/compression.json

bench-inference: setup
	$(PY) tests/bench/bench_inference.py --out bench/inference.json

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

install-dev:
	$(SYSTEM_PYTHON) .ci/install_dev.py $(if $(QGIS_PROFILE),--profile-dir "$(QGIS_PROFILE)")

# ruff on everything; then the QGIS plugin repository's own upload scan (bandit, detect-secrets, flake8 with
# flake8-qgis) on the unpacked release zip, exactly as plugins.qgis.org runs it (.ci/plugin_scan.py).
lint: setup
	$(PY) -m ruff check --config .ci/ruff.toml landslide_sar_plugin training tests .ci
	$(PY) -m bandit -q -r landslide_sar_plugin -c .ci/bandit.yaml
	$(PY) .ci/plugin_scan.py

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
	$(PY) tests/tools/screenshot_dock.py --review --out docs/review.png

clean:
	rm -rf out dist bench .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
