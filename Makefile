# Two entry points, both from a fresh machine with only Python 3.11+:
#   make demo   set up .venv, check every example, summarise, graph and derive examples/moons.tfm
#   make test   set up .venv and run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
RUN    ?= runs/moons

.PHONY: demo test setup clean

$(BIN)/tfmc: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/tfmc

demo: setup
	$(BIN)/tfmc check examples/*.tfm
	mkdir -p $(RUN)
	$(BIN)/tfmc info examples/moons.tfm --json > $(RUN)/model.json
	$(BIN)/tfmc graph examples/moons.tfm --dot > $(RUN)/graph.dot
	$(BIN)/tfmc derive examples/moons.tfm --format json > $(RUN)/derive.json
	$(BIN)/tfmc info examples/moons.tfm
	$(BIN)/tfmc derive examples/moons.tfm
	@echo "wrote $(RUN)/model.json, $(RUN)/graph.dot and $(RUN)/derive.json"

test: setup
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) runs
