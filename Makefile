# SER Lab. Two commands for a fresh machine: `make app` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: app test lint venv demo-checkpoints bench clean-venv

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

app: venv
	$(PY) -m streamlit run app.py --server.port $(PORT)

lint: venv
	$(PY) -m ruff check .

test: venv
	$(PY) -m ruff check .
	$(PY) -m pytest

demo-checkpoints: venv
	$(PY) -m ser_lab.demo

clean-venv:
	rm -rf $(VENV)
