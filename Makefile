# Entry points, each from a fresh machine with only Python 3.11+:
#   make demo       set up .venv, check every example, derive examples/moons.tfm, then compile and
#                   train it on the CPU (JAX) into runs/moons: checkpoint, samples, plots, metrics
#   make test       set up .venv (JAX and PyTorch backends) and run the test suite
#   make test-fast  set up .venv and run only the front end's and the compiler's tests and the
#                   layer rules: none of them trains, samples or emits with a backend
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
RUN    ?= runs/moons

.PHONY: demo test test-fast setup clean

# the tests that need neither JAX nor torch (test-fast)
FAST_TESTS = tests/test_roundtrip.py tests/test_derive.py tests/test_lowering.py \
             tests/test_injection.py tests/test_robustness.py tests/test_golden.py \
             tests/test_cli.py tests/test_layers.py

$(BIN)/tfmc: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet 'torch==2.13.0'  # the CPU build (a plain torch pulls CUDA)
	$(BIN)/python -m pip install --quiet -e '.[dev,jax,torch]'
	touch $@

setup: $(BIN)/tfmc

demo: setup
	$(BIN)/tfmc check examples/*.tfm
	mkdir -p $(RUN)
	$(BIN)/tfmc info examples/moons.tfm --json > $(RUN)/model.json
	$(BIN)/tfmc graph examples/moons.tfm --dot > $(RUN)/graph.dot
	$(BIN)/tfmc derive examples/moons.tfm --format json > $(RUN)/derive.json
	$(BIN)/tfmc derive examples/moons.tfm
	$(BIN)/tfmc compile examples/moons.tfm --backend jax -o $(RUN)
	$(BIN)/tfmc run examples/moons.tfm --backend jax --out $(RUN)
	$(BIN)/tfmc sample $(RUN) -n 10000 -o $(RUN)/samples_10k.npy
	@echo "wrote $(RUN)/: model.json graph.dot derive.json moons_jax.py checkpoint.safetensors"
	@echo "       metrics.json samples.npy samples.png trajectories.png loss.png samples_10k.npy"

test: setup
	$(BIN)/python -m pytest -n auto --dist worksteal  # pytest-xdist: one worker per core; idle workers take queued tests

test-fast: setup
	$(BIN)/python -m pytest $(FAST_TESTS)

clean:
	rm -rf $(VENV) runs
