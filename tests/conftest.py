import os
from pathlib import Path

import pytest

from backend_params import BACKENDS, backend_ops_of  # tests/

ROOT = Path(__file__).resolve().parent.parent

# JAX's persistent compilation cache, shared by the test processes (pytest-xdist's workers) and
# kept between runs: many tests compile the same programs (the same small models, the same
# kernels), and a compiled program found there is loaded instead of compiled again (about a
# fifth of tests/test_backends.py's JAX time on a fresh cache). Set before JAX is imported; an
# existing setting wins.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / "build" / "jax-test-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# On a GPU the tests check float32 arithmetic, as on the CPU: no TF32 matrix products (JAX's
# default precision there, and torch's once a float32 TorchModel allows them), which keep about
# three significant digits and would move the cross-backend comparisons by 1e-3. NVIDIA's own
# switch turns TF32 off in cuBLAS and cuDNN whatever a framework asks; no effect on a CPU.
os.environ.setdefault("JAX_DEFAULT_MATMUL_PRECISION", "highest")
# With pytest-xdist's workers sharing the cores, torch's own thread pool (one thread per core in
# each worker) oversubscribes them: one thread per worker ran a torch-heavy part of the suite
# in 100 s instead of 136 s on 2 cores. Set before torch is imported; an existing setting wins.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")
# `tfmc run` evaluates a trained model with 500 samples instead of 2000 (driver/run.py,
# eval_points): the tests check what the evaluation writes, not its precision; a test that
# compares a W2 with a bar sets its own number.
os.environ.setdefault("TFM_EVAL_POINTS", "500")


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite the expected outputs of tests/golden from the current compiler")


@pytest.fixture
def update_golden(request, monkeypatch) -> bool:
    """Whether to rewrite the goldens. A test comparing with a golden also gets a deterministic
    simplifier: sympy's simplify has 30 s instead of the compiler's 1 s (compiler/derive.py),
    so that a loaded machine does not fall back to the cheaper form (test_derive[encoder_decoder]
    did so once under load); the memo keeps no such fallback. Every golden's slowest simplify
    takes about 0.15 s."""
    from tfm.compiler import derive
    monkeypatch.setattr(derive, "SIMPLIFY_SECONDS", 30.0)
    return request.config.getoption("--update-golden") or os.environ.get("TFM_UPDATE_GOLDEN") == "1"


@pytest.fixture(params=BACKENDS, scope="module")
def backend(request) -> str:
    """Each test that takes it runs for JAX and for PyTorch (tests/backend_params.py)."""
    return request.param


@pytest.fixture(params=BACKENDS, scope="module")
def backend_ops(request):
    """(name, ops) for JAX and for PyTorch, each skipped where its libraries are missing."""
    return request.param, backend_ops_of(request.param)


@pytest.fixture
def in_root(monkeypatch):
    """Run from the repository root, so that diagnostics name files as the goldens do."""
    monkeypatch.chdir(ROOT)
    return ROOT


# The slowest modules first (longest-first scheduling): pytest-xdist's workers then end on short
# tests instead of one worker finishing a long one alone. Whole modules move, so that their
# module-scoped fixtures are still built once. Alphabetical order put tests/test_unet.py's
# 70-second digits test last.
FIRST = ("test_unet.py", "test_flow_cnf.py", "test_distributed.py", "test_fewstep.py",
         "test_flow_models.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name = Path(str(item.fspath)).name
        return FIRST.index(name) if name in FIRST else len(FIRST)

    items.sort(key=rank)  # stable: the order within each module is kept
