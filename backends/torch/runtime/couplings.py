"""Couplings of a batch (x0, x1) (MATH.md section 2, Couplings ν).

- ``independent`` and ``paired``: the batch as drawn (paired data are drawn with shared indices);
- ``minibatch_ot``: the exact assignment minimising sum |x0_i - x1_pi(i)|^2 (OT-CFM), solved by
  scipy's ``linear_sum_assignment`` on the host (exact OT has no fixed-shape device algorithm;
  torchcfm solves it on the host too); the indices go back to x1's device;
- ``sinkhorn(reg)``: the entropic plan with regularisation ``reg`` relative to the mean cost,
  computed on the device in the log domain (iterations stop when every row marginal is within
  0.1% of 1/n, checked every 10 iterations to spare a host sync per iteration, or after 2000);
  each x0_i is paired with x1_j, j drawn from row i with the ``torch.Generator`` ``gen``.

No gradient flows through a plan or an assignment (as in JAX, where the host callback and the
while loop are not differentiated); gradients still reach x1 through the indexing.
"""

from __future__ import annotations

import math

import torch

from ...shared.couplings import SINKHORN_MAX_ITERATIONS, SINKHORN_TOLERANCE, assignment

SINKHORN_CHECK_EVERY = 10  # iterations between two checks of the row error (each one syncs)


def _costs(x0, x1):
    a, b = x0.reshape(x0.shape[0], -1), x1.reshape(x1.shape[0], -1)
    return torch.sum(a * a, 1)[:, None] + torch.sum(b * b, 1)[None, :] - 2 * a @ b.T


def minibatch_ot(gen, x0, x1):
    cost = _costs(x0.detach(), x1.detach()).to("cpu", torch.float64).numpy()
    perm = torch.as_tensor(assignment(cost), device=x1.device)
    return x0, x1[perm]


@torch.no_grad()
def sinkhorn_plan(cost, reg):
    """log of the entropic OT plan between uniform weights (log-domain Sinkhorn)."""
    if cost.dtype in (torch.float16, torch.bfloat16):
        cost = cost.float()  # half precision cannot reach the tolerance
    n, m = cost.shape
    eps = reg * torch.mean(cost)
    log_a = torch.full((n,), -math.log(n), dtype=cost.dtype, device=cost.device)
    log_b = torch.full((m,), -math.log(m), dtype=cost.dtype, device=cost.device)
    f = torch.zeros(n, dtype=cost.dtype, device=cost.device)
    g = torch.zeros(m, dtype=cost.dtype, device=cost.device)
    for i in range(1, SINKHORN_MAX_ITERATIONS + 1):
        f = eps * log_a - eps * torch.logsumexp((g[None, :] - cost) / eps, dim=1)
        g = eps * log_b - eps * torch.logsumexp((f[:, None] - cost) / eps, dim=0)
        if i % SINKHORN_CHECK_EVERY == 0:
            rows = torch.logsumexp((f[:, None] + g[None, :] - cost) / eps, dim=1)
            error = torch.max(torch.abs(torch.expm1(rows - log_a)))
            if not float(error) > SINKHORN_TOLERANCE:  # a NaN stops too, as in JAX
                break
    return (f[:, None] + g[None, :] - cost) / eps


def make(entry: dict):
    """(gen, x0, x1) -> (x0, x1) for the coupling ``entry`` (SPEC's coupling)."""
    name = entry["name"]
    if name in ("independent", "paired"):
        return lambda gen, x0, x1: (x0, x1)
    if name == "minibatch_ot":
        return minibatch_ot
    if name == "sinkhorn":
        reg = float(entry["args"]["reg"])

        def sinkhorn(gen, x0, x1):
            log_plan = sinkhorn_plan(_costs(x0.detach(), x1.detach()), reg)
            j = torch.multinomial(torch.softmax(log_plan, dim=1), 1, generator=gen).squeeze(1)
            return x0, x1[j]
        return sinkhorn
    raise ValueError(f"unknown coupling {name}")
