#!/usr/bin/env bash
# One call on a lent GPU machine: the card's ceilings, the GPU benchmarks and the CUDA paths of
# the test suite, each section under its own time limit so that one that hangs or fails leaves
# the others' figures. Everything lands in $WORK; $OUT gets summary.txt and all.tgz (re-packed
# after every section, so a call cut short still brings back what had finished).
#
#   OUT=/tmp/gpu bash bench/gpu.sh                         # on the GPU machine
#   PYTHON=.venv/bin/python QUICK=1 LIMITS=short OUT=/tmp/gpu bash bench/gpu.sh   # smoke, here
#
# Python packages the machine lacks travel as wheels in .whl/ (lark, pot, array-api-compat,
# arviz-stats, torchcfm, flow_matching, blackjax); the repository is imported as `tfm` through a
# link, as the editable install does here.
set -u
OUT=${OUT:-/tmp/gpu-out}
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d /tmp/tfm-gpu.XXXX)
mkdir -p "$OUT"
SITE=/tmp/tfm-site
mkdir -p "$SITE"
if [ -d .whl ] && [ "${NO_WHEELS:-0}" != 1 ]; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" .whl/*.whl > "$WORK/pip.log" 2>&1 || echo "wheels: pip failed (pip.log)"
fi
ln -sfn "$PWD" "$SITE/tfm"
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 IDLE_WAIT=0 GPU=${GPU:-1}

# section NAME SECONDS COMMAND...: its output in $WORK/NAME.log, its time and exit status in
# summary.txt, the end of its log on stdout (the reply carries the end of the output)
section() {
    case " ${SECTIONS:-env torch_bench jax_bench bf16 moons conv sharded unet fewstep ot rerun tests profile} " in
        *" $1 "*) ;;
        *) return 0 ;;
    esac
    local name=$1 limit=$2 start=$SECONDS rc
    shift 2
    [ "${LIMITS:-}" = short ] && limit=$(( limit < 60 ? limit : 60 ))
    echo "=== $name: start $(date +%T), limit ${limit}s" | tee -a "$OUT/summary.txt"
    timeout --kill-after=5 "$limit" "$@" > "$WORK/$name.log" 2>&1
    rc=$?
    echo "=== $name: rc $rc, $((SECONDS - start)) s" | tee -a "$OUT/summary.txt"
    tail -n "${TAIL:-12}" "$WORK/$name.log"
    tar czf "$OUT/all.tgz" -C "$WORK" .
}

section env 30 bash -c "nvidia-smi; nproc; $PYTHON - <<'EOF'
import sys, time
import jax, torch
print('python', sys.version.split()[0], 'jax', jax.__version__, jax.devices(), 'torch', torch.__version__,
      'cuda', torch.cuda.is_available())
import lark, ot, torchcfm, flow_matching, tfm
print('lark', lark.__version__, 'pot', ot.__version__, 'tfm from', tfm.__file__)
if torch.cuda.is_available():
    torch.manual_seed(0)
    for dtype, n in ((torch.bfloat16, 8192), (torch.float32, 8192)):
        a = torch.randn(n, n, device='cuda', dtype=dtype); b = torch.randn(n, n, device='cuda', dtype=dtype)
        for _ in range(3): a @ b
        torch.cuda.synchronize(); t0 = time.perf_counter()
        for _ in range(10): a @ b
        torch.cuda.synchronize(); dt = (time.perf_counter() - t0) / 10
        print(f'torch matmul {dtype} {n}^3: {2 * n**3 / dt / 1e12:.1f} TFLOP/s (tf32 off)')
    x = torch.randn(2**30, device='cuda'); y = torch.empty_like(x)
    for _ in range(3): y.copy_(x)
    torch.cuda.synchronize(); t0 = time.perf_counter()
    for _ in range(10): y.copy_(x)
    torch.cuda.synchronize(); dt = (time.perf_counter() - t0) / 10
    print(f'device copy: {2 * x.numel() * 4 / dt / 1e12:.2f} TB/s (read + write)')
EOF"
section torch_bench 130 env OUT="$WORK" "$PYTHON" bench/torch_backend.py
section jax_bench 110 env OUT="$WORK" "$PYTHON" bench/jax_backend.py
section bf16 60 env OUT="$WORK" "$PYTHON" bench/bf16_mlp.py
section moons 70 bash -c "timeout 55 $PYTHON -m tfm.driver.cli run examples/moons.tfm --backend jax \
    --quiet --out $WORK/moons_jax --force > $WORK/moons_jax.txt 2>&1 & \
    timeout 55 $PYTHON -m tfm.driver.cli run examples/moons.tfm --backend torch --quiet \
    --out $WORK/moons_torch --force > $WORK/moons_torch.txt 2>&1; wait; for b in jax torch; do \
    echo == \$b; tail -n 8 $WORK/moons_\$b.txt; head -c 1500 $WORK/moons_\$b/metrics.json; \
    rm -f $WORK/moons_\$b/*.safetensors $WORK/moons_\$b/*.npy; done"
section conv 40 env OUT="$WORK" STEPS=256 ROUNDS=3 N=10000 "$PYTHON" bench/conv.py
# the data-parallel code path (a mesh of one GPU; a NCCL process group of one) against the plain
# one; tfm's U-Net against torchcfm's
section sharded "${SHARDED_LIMIT:-110}" env OUT="$WORK" "$PYTHON" bench/sharded.py
section unet "${UNET_LIMIT:-160}" env OUT="$WORK" "$PYTHON" bench/unet.py
# the few-step maps' samples per second against the 20-step ODE (a short training: the speed does
# not depend on it); the minibatch OT coupling's step against the independent one
section fewstep "${FEWSTEP_LIMIT:-120}" env OUT="$WORK" STEPS=${FEWSTEP_STEPS:-2000} SECTIONS=maps \
    BACKENDS=jax,torch "$PYTHON" bench/fewstep.py
section ot "${OT_LIMIT:-150}" env OUT="$WORK" SECTIONS=solver,step "$PYTHON" bench/ot_coupling.py
# the CUDA paths of the tests: torch on the card (compiled losses, TF32), JAX on the card;
# TESTS (pytest arguments) and TESTS_LIMIT (seconds) choose others; RERUN: node ids run again
# with their tracebacks
TAIL=60 section rerun "${RERUN_LIMIT:-90}" env XLA_PYTHON_CLIENT_PREALLOCATE=false "$PYTHON" -m pytest \
    -n 8 -p no:cacheprovider -o addopts="" -q -rf --tb=short --show-capture=no ${RERUN:-}
TAIL=40 section tests "${TESTS_LIMIT:-90}" env XLA_PYTHON_CLIENT_PREALLOCATE=false "$PYTHON" -m pytest \
    -n 8 -v -p no:cacheprovider --maxfail=30 -o addopts="" -rf --tb=short --show-capture=no ${TESTS:-tests/test_cross_backend.py \
    tests/test_runtime.py tests/test_user_networks.py tests/test_mcmc.py tests/test_smc.py}
TAIL=60 section profile "${PROFILE_LIMIT:-70}" "$PYTHON" bench/gpu_profile.py
echo "=== done $(date +%T)" | tee -a "$OUT/summary.txt"
tar czf "$OUT/all.tgz" -C "$WORK" .
