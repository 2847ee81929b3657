# Setup and everyday commands. Every target installs what it needs first,
# so `make serve` and `make test` work on a fresh clone.
#
# Offline machines: set SECOM_DATA to the path of the UCI secom.zip.

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 3000
HOST ?= 127.0.0.1
PYTEST_ARGS ?=

export BENTOML_DO_NOT_TRACK ?= true

.PHONY: install model serve test bench container clean

# The venv is rebuilt when pyproject.toml changes; the stamp marks a finished install.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@

install: $(VENV)/.installed

# Train and register secom-lstm unless the model store already has one.
model: install
	$(BIN)/python import_model.py --if-missing

serve: model
	$(BIN)/bentoml serve service:SecomLSTM --host $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: model
	$(BIN)/python bench/run.py

container: model
	$(BIN)/python deploy/container/check_container.py

clean:
	rm -rf $(VENV) .pytest_cache
