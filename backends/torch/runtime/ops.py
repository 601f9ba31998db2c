"""The PyTorch side of ``runtime/ops.py``: draws from a ``torch.Generator`` on the arrays'
device (never torch's global one), a Python loop for ``scan`` and ``while_loop``,
``torch.func.jvp``, the exact divergence by reverse mode, scipy's assignment on the host, and
torchdiffeq's dopri5 set up as the JAX backend's diffrax run."""

from __future__ import annotations

import array_api_compat.torch as xp
import numpy as np
import torch
from torch.func import jvp
from torchdiffeq import odeint

from ...runtime.couplings import exact_assignment as host_assignment
from ....errors import Diagnostic, TfmSemanticError
from ...runtime.ops import first_leaf, tree_map

F32 = torch.float32


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device(name) -> torch.device:
    """A torch device that exists on this machine, or a clear error."""
    try:
        found = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise _error(f"'{name}' is not a torch device ({err}).",
                     'Use device="cpu" or device="cuda".') from None
    if found.type == "cuda" and not torch.cuda.is_available():
        raise _error(f"The device '{name}' was asked for, but torch sees no CUDA GPU here.",
                     'Use device="cpu", or leave the device out (CUDA when there is one).')
    return found


def _error(message: str, suggestion: str) -> TfmSemanticError:
    return TfmSemanticError(Diagnostic("Semantic", message, suggestion=suggestion))


class Random:
    """Draws from a ``torch.Generator``; its device is the arrays' device."""

    def __init__(self, gen: torch.Generator):
        self.gen = gen
        self.device = gen.device

    def split(self, n: int) -> tuple["Random", ...]:
        """n streams: here the one generator, drawn from in the order the streams are used."""
        return (self,) * n

    def key(self) -> torch.Generator:
        return self.gen

    def keys(self, n: int) -> list[torch.Generator]:
        """Keys for n streams, one per step of a loop (here: the same generator each time)."""
        return [self.gen] * n

    def normal(self, shape, dtype=None):
        return torch.randn(tuple(shape), generator=self.gen, device=self.device, dtype=dtype or F32)

    def uniform(self, shape):
        return torch.rand(tuple(shape), generator=self.gen, device=self.device, dtype=F32)

    def randint(self, high, shape):
        return torch.randint(0, high, tuple(shape), generator=self.gen, device=self.device)

    def rademacher(self, shape, dtype=None):
        bits = torch.randint(0, 2, tuple(shape), generator=self.gen, device=self.device)
        return (2 * bits - 1).to(dtype or F32)

    def categorical(self, logits):
        probs = torch.softmax(logits, dim=1)
        return torch.multinomial(probs, 1, generator=self.gen).squeeze(1)


def _stack(leaves):
    first = leaves[0]
    if isinstance(first, tuple):
        return tuple(torch.stack(parts) for parts in zip(*leaves))
    return torch.stack(leaves)


def _index(xs, k):
    if isinstance(xs, tuple):
        return tuple(_index(x, k) for x in xs)
    return xs[k]


def _length(xs) -> int:
    return _length(xs[0]) if isinstance(xs, tuple) else len(xs)


class _Counted:
    """f(t, y) for torchdiffeq, with the times cast to the state's dtype and the steps counted
    by torchdiffeq's ``callback_step`` hook (called once per attempted step)."""

    def __init__(self, f, dtype):
        self.f, self.dtype, self.steps = f, dtype, 0

    def __call__(self, t, y):
        return self.f(t.to(self.dtype), y)

    def callback_step(self, t0, y0, dt):
        self.steps += 1


def _rms_norm(y):
    """sqrt(mean(y^2)) over all the tensors of a state together (diffrax's norm)."""
    leaves = y if isinstance(y, tuple) else (y,)
    return torch.sqrt(sum(leaf.abs().square().sum() for leaf in leaves)
                      / sum(leaf.numel() for leaf in leaves))


def exact_matmul(a, b):
    """a @ b in full float32 precision: on CUDA through float64, which TF32 (set by a float32
    TorchModel on CUDA) never touches."""
    if a.is_cuda:
        return xp.matmul(a.double(), b.double()).float()
    return xp.matmul(a, b)


class _ExactProducts:
    """The array API namespace with ``matmul`` at full float32 precision."""

    matmul = staticmethod(exact_matmul)

    def __getattr__(self, name):
        return getattr(xp, name)


class Ops:
    name = "torch"
    xp = xp
    exact_xp = _ExactProducts()

    def __init__(self, device="cpu"):
        self.device = torch.device(device)

    def key(self, seed: int, index: int | None = None) -> torch.Generator:
        gen = torch.Generator(self.device)
        gen.manual_seed(seed if index is None else seed * 1_000_003 + index)
        return gen

    def random(self, key) -> Random:
        return Random(key)

    def asarray(self, value, dtype=None):
        if isinstance(value, torch.Tensor):
            return value.to(device=self.device, dtype=dtype or F32)
        return torch.as_tensor(np.asarray(value), dtype=dtype or F32, device=self.device)

    def numpy(self, x) -> np.ndarray:
        return x.detach().float().cpu().numpy()

    def scan(self, body, carry, xs, trajectory: bool = False):
        """``lax.scan``'s contract as a loop: (carry, stacked outputs, or None)."""
        outputs = []
        for k in range(_length(xs)):
            carry, y = body(carry, _index(xs, k))
            if trajectory:
                outputs.append(y)
        return carry, (_stack(outputs) if trajectory else None)

    def while_loop(self, cond, body, state):
        while bool(cond(state)):  # one host synchronisation per test
            state = body(state)
        return state

    def cond(self, pred, if_true, if_false):
        """``lax.cond``'s contract: only the branch that ``pred`` picks runs."""
        return if_true() if bool(pred) else if_false()

    def full(self, value, like, dtype=None):
        """``value`` (a tensor that broadcasts to ``like``, or a number) as a tensor of
        ``like``'s shape and of ``dtype`` (default: like's): a term constant in x still counts
        once per element."""
        dtype = dtype or like.dtype
        if isinstance(value, torch.Tensor) and value.shape == like.shape:
            return value.to(dtype)
        return torch.broadcast_to(torch.as_tensor(value, device=like.device), like.shape).to(dtype)

    def time(self, t, like):
        """t (a number or a 0-d tensor) as a float32 tensor on like's device."""
        return torch.as_tensor(t, dtype=F32, device=like.device)

    def stop_gradient(self, x):
        return x.detach()

    def jvp(self, f, primals, tangents):
        return jvp(f, primals, tangents)

    def velocity_and_divergence(self, velocity, t, x):
        """b(t, x) and the trace of db/dx for each point of the batch x (B, *shape), keeping
        only the diagonal of each Jacobian row (``_jacobian_rows``). Reverse mode: 2.6x
        vmap(jacfwd) per point on the benchmark's MLP."""
        diagonal = []
        b = _jacobian_rows(velocity, t, x, lambda i, row: diagonal.append(row[:, i]))
        return b, torch.stack(diagonal, dim=1).sum(1)

    def value_and_jacobian(self, f, t, x):
        """f(t, x) (B, *shape) and, for each point, the Jacobian of f in x flattened, (B, d,
        d) (``_jacobian_rows``)."""
        rows = []
        b = _jacobian_rows(f, t, x, lambda i, row: rows.append(row))
        return b, torch.stack(rows, dim=1)

    def value_and_grad(self, f, x):
        """f(x) and its gradient point by point: one reverse pass through the sum over the
        batch (the points do not interact). Both come back detached."""
        with torch.enable_grad():
            y = x.detach().requires_grad_(True)
            value = f(y)
            (grad,) = torch.autograd.grad(value.sum(), y)
        return value.detach(), grad

    def hvp(self, f, x, v):
        """Hessian-vector products point by point: reverse over reverse (double backward)."""
        with torch.enable_grad():
            y = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(f(y).sum(), y, create_graph=True)
            (hv,) = torch.autograd.grad((grad * v).sum(), y)
        return hv.detach()

    def assignment(self, cost):
        """The exact assignment of a cost matrix, solved on the host (scipy); the indices go
        back to the cost's device."""
        perm = host_assignment(cost.detach().to("cpu", torch.float64).numpy())
        return torch.as_tensor(perm, device=cost.device)

    def adaptive(self, f, y0, t0, t1, rtol, atol, max_steps: int = 4096):
        """Dormand-Prince 5(4) (torchdiffeq), set up as the JAX backend's diffrax run: first
        step (t1 - t0) / 20, the last step clipped to land on t1, an I-controller with safety
        0.9 and step factors in [0.2, 10], and the RMS norm over all of a tuple state's tensors
        together (torchdiffeq's default for tuples is the largest of their separate norms). On
        the tests' ODEs both backends take the same steps and agree to rounding. Returns y(t1)
        and the number of steps, accepted and rejected (diffrax's ``num_steps``). torchdiffeq
        runs a decreasing interval by negating time internally; ``f`` still sees the true t.
        More than ``max_steps`` steps raise torchdiffeq's AssertionError."""
        t0, t1 = float(t0), float(t1)
        if t0 == t1:
            return y0, 0
        like = first_leaf(y0)
        counted = _Counted(f, like.dtype)
        ts = torch.tensor([t0, t1], dtype=torch.float64, device=like.device)
        ys = odeint(counted, y0, ts, rtol=rtol, atol=atol, method="dopri5",
                    options={"max_num_steps": max_steps, "first_step": abs(t1 - t0) / 20,
                             "step_t": ts[1:], "norm": _rms_norm})  # a tensor: negated with t
        return tree_map(lambda y: y[-1], ys), counted.steps


def _jacobian_rows(f, t, x, use):
    """f(t, x) of the whole batch once (returned, detached), then for each output dimension i
    the gradient of sum_points f_i, whose row at a point is d f_i / dx there (points do not
    interact in tfm's networks), handed to ``use(i, rows (B, d))`` as it is computed."""
    with torch.enable_grad():
        y = x.detach().requires_grad_(True)
        b = f(t, y)
        flat = b.reshape(b.shape[0], -1)
        dim = flat.shape[1]
        for i in range(dim):
            (grad,) = torch.autograd.grad(flat[:, i].sum(), y, retain_graph=i < dim - 1)
            use(i, grad.reshape(b.shape[0], -1))
    return b.detach()
