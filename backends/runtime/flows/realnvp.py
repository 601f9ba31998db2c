"""The ``realnvp`` flow: affine coupling layers (Dinh, Sohl-Dickstein and Bengio, "Density
estimation using Real NVP", 2017), then the final affine layer of every coupling flow
(``flows/__init__.py``).

Coupling layer k maps each transformed coordinate u_i -> u_i exp(s_i) + t_i, where the shift
t_i and the log-scale s_i are the conditioner's two numbers for coordinate i (theta[..., 0] and
theta[..., 1]) computed from the kept coordinates; its inverse is (u_i - t_i) exp(-s_i), and
log g'(u_i) = s_i (minus s_i for the inverse). The log-scale is soft-clamped, s = c tanh(s_raw /
c) with c = SCALE_CLAMP, so one layer scales a coordinate by at most e^3 either way and a bad
step cannot overflow. Args: ``layers``, ``width``, ``depth``, ``activation``, ``mask``.
"""

from __future__ import annotations

from . import Coupling, register, soft_clamp

SCALE_CLAMP = 3.0  # the log-scale of one affine coupling lies in (-3, 3)


def _parameters(args: dict) -> int:
    return 2  # shift, log-scale


def _affine(xp, layers, args, theta, u, inverse: bool):
    shift, s = theta[..., 0], soft_clamp(xp, theta[..., 1], SCALE_CLAMP)
    if inverse:
        return (u - shift) * xp.exp(-s), -s
    return u * xp.exp(s) + shift, s


register("realnvp", Coupling(_parameters, _affine))
