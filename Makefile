# SER Lab. Two commands for a fresh machine: `make app` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: app test lint venv browser demo-checkpoints clean-venv

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $@

# The test suite also covers the optional Ray backend, the exports (TensorBoard, ONNX) and the
# eGeMAPS + SVM baseline, and drives the app in a real browser.
$(VENV)/.installed-test: $(VENV)/.installed requirements-cluster.txt requirements-export.txt requirements-classical.txt
	$(PY) -m pip install --quiet -r requirements-cluster.txt -r requirements-export.txt -r requirements-classical.txt
	touch $@

browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
		|| echo "chromium could not be installed: the browser test will be skipped"

venv: $(VENV)/.installed

app: venv
	$(PY) -m streamlit run app.py --server.port $(PORT)

lint: venv
	$(PY) -m ruff check .

test: $(VENV)/.installed-test browser
	$(PY) -m ruff check .
	$(PY) -m pytest

demo-checkpoints: venv
	$(PY) -m ser_lab.experiments.demo

clean-venv:
	rm -rf $(VENV)
