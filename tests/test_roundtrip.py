"""Property-based round trips through the parser, the formatter (``tfmc fmt``) and the compiler.

A hypothesis strategy writes random *valid* models: random dimensions and shapes, normal bases
with scalar or vector arguments, targets from stdlib.toy2d or normal, couplings, scalar functions
of time built from a small expression grammar (calling earlier functions, at top level or in the
model), an interpolant built from those functions that meets the boundary conditions (or a named
stdlib interpolant), networks, objective terms, time laws, weights, noise schedules, samplers and
train settings. Each model is rendered with random but legal layout: spaces, tabs, form feeds,
CR LF, blank lines, statements sharing a line, redundant parentheses and comments (with any
character) between any two tokens.

Properties:
- the generated text compiles without errors;
- ``format_module(parse(text))`` parses to an equal syntax tree and compiles to an equal IR;
- formatting is idempotent, and the multiset of comment texts survives it (comments between
  statements, and comments anywhere, even inside a statement written across lines);
- the same for every file of examples/ and stdlib/ (the stdlib through probe models that use
  its declarations, so that its *meaning* is compared, not only its tree).
"""

from __future__ import annotations

import keyword
import random
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tfm.dsl import parse
from tfm.dsl import syntax as S
from tfm.dsl.format import format_module
from tfm.dsl.parse import KEYWORDS
from tfm.compiler.pipeline import compile_text
from limits import time_limit  # tests/limits.py

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.tfm"))
STDLIB_DIR = ROOT / "stdlib"
STDLIB = sorted(STDLIB_DIR.glob("*.tfm"))

# No shrinking: a failure prints its (unshrunk) text at once, where shrinking these large
# examples can take minutes. Minimal reproductions of the bugs found are written out below.
SETTINGS = dict(deadline=None, derandomize=True, database=None, print_blob=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])


# --- what the standard library declares (read, so that renames there do not break this file) ---

def _stdlib_decls(name: str) -> list:
    path = STDLIB_DIR / f"{name}.tfm"
    if not path.is_file():
        return []
    return [i for i in parse(path.read_text(), f"stdlib/{name}.tfm").items
            if isinstance(i, (S.FunctionDecl, S.InterpolantDecl, S.PrimitiveDecl))]


PRELUDE = {d.name: d for d in _stdlib_decls("prelude") if isinstance(d, S.PrimitiveDecl)}
TOY2D = [d for d in _stdlib_decls("toy2d") if isinstance(d, S.PrimitiveDecl)
         and d.kind == "distribution" and all(p.type is None or p.type.name == "real"
                                              for p in d.params)]
# named interpolants whose every parameter has a default, from a list known to meet I(0) = x0 and
# I(1) = x1 exactly for positive arguments
_KNOWN_INTERPOLANTS = ("linear", "trig", "schrodinger_bridge", "linear_noisy")
INTERPOLANTS = [d for d in _stdlib_decls("interpolants") if isinstance(d, S.InterpolantDecl)
                and d.name in _KNOWN_INTERPOLANTS
                and all(p.default is not None for p in d.params or ())]
LR_SCHEDULES = [d for d in PRELUDE.values() if d.kind == "lr_schedule"
                and all(p.type is not None and p.type.name in ("int", "real") for p in d.params)]
STDLIB_NAMES = {d.name for n in ("prelude", "toy2d", "interpolants", "schedules", "targets")
                for d in _stdlib_decls(n)}
PARAM_NAMES = ("t", "s", "u", "tau", "r", "a", "k", "w")
BUILTIN_NAMES = {"sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "exp", "log",
                 "sqrt", "abs", "sigmoid", "softplus", "min", "max", "sum", "dot", "norm",
                 "logsumexp", "integral", "pi", "e", "x", "x0", "x1", "z", "x_t", "time"}
try:  # the compiler's own list, where it has one
    from tfm.compiler.ast_to_ir import RESERVED as _RESERVED
    BUILTIN_NAMES |= set(_RESERVED)
except ImportError:  # pragma: no cover
    pass
OTHER_WORDS = {"velocity", "noise", "data", "base", "score", "potential", "silu", "relu", "gelu",
               "selu", "elu", "forward", "backward", "float32", "bfloat16", "steps", "batch",
               "optimizer", "lr_schedule", "ema", "clip", "seed", "precision",
               "checkpoint_every", "log_every", "stdlib", "normal", "data", "energy", "real",
               "int", "vector", "string", "path", "schedule", "inf", "nan", "oo", "I", "E", "S",
               "N", "O", "Q", "true", "false", "none", "null"}
BANNED = (set(KEYWORDS) | set(keyword.kwlist) | set(keyword.softkwlist) | {"type"}
          | BUILTIN_NAMES | STDLIB_NAMES | OTHER_WORDS | set(PARAM_NAMES))


def _allowed(name: str) -> bool:
    return (name not in BANNED and name.lower() not in BANNED and not name.startswith("__")
            and name != "_")


names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,7}", fullmatch=True).filter(_allowed)

PUNCT = set("(){}[],=~+-*/^:.")

# --- literals ------------------------------------------------------------------------------


def _spellings(value: Decimal) -> list[str]:
    """Different texts for the same number, as the NUMBER token allows."""
    out = set()
    plain = format(value, "f")
    out.add(plain)
    if "." not in plain:
        out.add(plain + ".")
        out.add(plain + ".0")
        out.add("0" + plain)
    else:
        out.add(plain + "0")
        if plain.startswith("0."):
            out.add(plain[1:])
    sign, digits, exp = value.as_tuple()
    mantissa = "".join(map(str, digits)).lstrip("0") or "0"
    out.add(f"{mantissa}e{exp}")
    out.add(f"{mantissa}E{exp:+d}")
    if len(mantissa) > 1:
        out.add(f"{mantissa[0]}.{mantissa[1:]}e{exp + len(mantissa) - 1}")
    return sorted(out)


@st.composite
def literal(draw, low: str, high: str, places: int = 3, integer: bool = False):
    """Text of a number literal in [low, high] (exact decimals)."""
    lo, hi = Decimal(low), Decimal(high)
    places = max(places, -lo.normalize().as_tuple().exponent)
    step = Decimal(1) if integer else Decimal(1).scaleb(-places)
    n = draw(st.integers(int((lo / step).to_integral_value(rounding="ROUND_CEILING")),
                         int((hi / step).to_integral_value(rounding="ROUND_FLOOR"))))
    value = (n * step).normalize() if n else Decimal(0)
    if integer:
        value = Decimal(n)
    text = draw(st.sampled_from(_spellings(value)))
    assert Decimal(text) == value, (text, value)
    return text


def nonzero(low="0.001", high="50"):
    """A positive literal."""
    assert Decimal(low) > 0
    return literal(low, high)


# --- expressions ---------------------------------------------------------------------------
# Trees of tuples: ("num", text) ("name", id) ("bin", op, l, r) ("neg", e) ("pos", e)
# ("call", func, [args], [(kw, e)]) ("paren", e). Every expression here is real and finite for
# real arguments: divisors and sqrt arguments are positive by construction, exponents of possibly
# negative bases are whole numbers.

PREC = {"+": 1, "-": 1, "*": 2, "/": 2, "^": 4}


def _prec(e) -> int:
    if e[0] == "bin":
        return PREC[e[1]]
    if e[0] in ("neg", "pos"):
        return 3
    return 6


def tokens(e, minimum: int = 0) -> list[str]:
    kind = e[0]
    if kind in ("num", "name"):
        out = [e[1]]
    elif kind == "paren":
        out = ["(", *tokens(e[1]), ")"]
    elif kind in ("neg", "pos"):
        out = ["-" if kind == "neg" else "+", *tokens(e[1], 3)]
    elif kind == "call":
        out = [e[1], "("]
        parts = [tokens(a) for a in e[2]] + [[k, "=", *tokens(v)] for k, v in e[3]]
        for i, part in enumerate(parts):
            if i:
                out.append(",")
            out += part
        out.append(")")
    elif kind == "bin":
        op = e[1]
        if op == "^":
            out = [*tokens(e[2], 5), "^", *tokens(e[3], 3)]
        else:
            out = [*tokens(e[2], PREC[op]), op, *tokens(e[3], PREC[op] + 1)]
    else:  # pragma: no cover
        raise AssertionError(e)
    if _prec(e) < minimum:
        out = ["(", *out, ")"]
    return out


def num(text):
    return ("num", text)


def call(func, *args, **kws):
    return ("call", func, list(args), list(kws.items()))


def bin_(op, a, b):
    return ("bin", op, a, b)


@st.composite
def positive(draw, variables, funcs, depth):
    """An expression that is > 0 for every real value of its variables."""
    choice = draw(st.integers(0, 4 if depth > 0 else 1))
    if choice == 0:
        return num(draw(nonzero()))
    if choice == 1:
        return num(draw(nonzero("1", "9")))
    inner = draw(expr(variables, funcs, depth - 1))
    if choice == 2:
        return call("exp", draw(bounded(variables, funcs, depth - 1)))
    if choice == 3:  # c + e^2
        return bin_("+", num(draw(nonzero("0.1", "5"))), bin_("^", inner, num("2")))
    return bin_("*", num(draw(nonzero("0.1", "5"))), call("exp", call("sin", inner)))


@st.composite
def bounded(draw, variables, funcs, depth):
    """An expression with values in [-1, 1]: a sine or cosine of anything."""
    return call(draw(st.sampled_from(["sin", "cos"])), draw(expr(variables, funcs, depth)))


@st.composite
def expr(draw, variables, funcs, depth):
    """Any real expression in ``variables``; ``funcs`` are callable: (name, n_params, kw)."""
    leaves = 3
    choice = draw(st.integers(0, leaves + 8 if depth > 0 else leaves - 1))
    if choice == 0:
        return num(draw(literal("0", "20", places=2)))
    if choice in (1, 2) and not variables:
        return num(draw(literal("0", "20", places=2)))
    if choice in (1, 2):
        return ("name", draw(st.sampled_from(sorted(variables))))
    sub = lambda: draw(expr(variables, funcs, depth - 1))  # noqa: E731
    if choice in (3, 4):
        return bin_(draw(st.sampled_from("+-*")), sub(), sub())
    if choice == 5:
        return bin_("/", sub(), draw(positive(variables, funcs, depth - 1)))
    if choice == 6:  # whole powers of anything, any power of something positive
        if draw(st.booleans()):
            return bin_("^", sub(), num(draw(st.sampled_from(["2", "3", "2.", "1", "0"]))))
        return bin_("^", draw(positive(variables, funcs, depth - 1)),
                    num(draw(literal("0", "3", places=1))))
    if choice == 7:
        return (draw(st.sampled_from(["neg", "neg", "pos"])), sub())
    if choice == 8:
        func = draw(st.sampled_from(["sin", "cos", "exp", "sqrt"]))
        if func == "sqrt":
            return call("sqrt", draw(positive(variables, funcs, depth - 1)))
        if func == "exp":
            return call("exp", draw(bounded(variables, funcs, depth - 1)))
        return call(func, sub())
    if choice == 9 and funcs:
        name, n_params, kw = draw(st.sampled_from(funcs))
        args = [sub() for _ in range(n_params)]
        if kw is not None:
            how = draw(st.integers(0, 2))
            if how == 1:
                args.append(sub())
            elif how == 2:
                return ("call", name, args, [(kw, sub())])
        return ("call", name, args, [])
    if choice == 10:
        return ("paren", sub())
    return num(draw(literal("0", "1000", places=3)))


# --- models --------------------------------------------------------------------------------

NICE_MEANS = ("0", "1", "0.5", "2", "3")
NICE_SCALES = ("1", "0.5", "2", "0.25", "1.5", "4")


@st.composite
def nice(draw, values, negative=False):
    """One of a few simple values, spelled in any way: the compiler's derivations turn a base's
    numbers into exact rationals, and sympy is slow on some (see test_robustness.py)."""
    e = num(draw(st.sampled_from(_spellings(Decimal(draw(st.sampled_from(values)))))))
    return ("neg", e) if negative and draw(st.booleans()) else e


@st.composite
def vector_arg(draw, dim: int, positive_values: bool, simple: bool = False):
    """A number, or a list of one or ``dim`` numbers (a normal's mean or scale)."""
    def one():
        if simple:
            return draw(nice(NICE_SCALES)) if positive_values else \
                draw(nice(NICE_MEANS, negative=True))
        if positive_values:
            if draw(st.integers(0, 4)) == 0:
                return ("name", "pi") if draw(st.booleans()) else draw(positive(set(), [], 1))
            return num(draw(nonzero("0.01", "10")))
        e = num(draw(literal("0", "10", places=2)))
        return ("neg", e) if draw(st.booleans()) else e

    if dim == 1 or draw(st.booleans()):
        return tokens(one()) if draw(st.booleans()) or dim != 1 else ["[", *tokens(one()), "]"]
    items = [tokens(one()) for _ in range(dim)]
    out = ["["]
    for i, it in enumerate(items):
        if i:
            out.append(",")
        out += it
    return out + ["]"]


@st.composite
def call_tokens(draw, func: str, params: list[tuple[str, list[str]]], required=(),
                bare_ok=True):
    """A call of a primitive: ``params`` is (name, value tokens) for the arguments to give,
    in declaration order; each is given positionally (a prefix) or by keyword (any order)."""
    chosen = [(n, v) for n, v in params if n in required or draw(st.booleans())]
    if not chosen and bare_ok and draw(st.booleans()):
        return [func]
    # positional only for a prefix of the declaration's parameters
    order = [n for n, _ in params]
    n_pos = 0
    while n_pos < len(chosen) and chosen[n_pos][0] == order[n_pos] and draw(st.booleans()):
        n_pos += 1
    positional, keywords = chosen[:n_pos], chosen[n_pos:]
    keywords = draw(st.permutations(keywords))
    parts = [v for _, v in positional] + [[n, "=", *v] for n, v in keywords]
    out = [func, "("]
    for i, p in enumerate(parts):
        if i:
            out.append(",")
        out += p
    return out + [")"]


def _decl_params(decl: S.PrimitiveDecl) -> list[str]:
    return [p.name for p in decl.params]


@st.composite
def models(draw):
    """(segments, facts): segments is a nested list structure rendered by ``render``."""
    used = draw(st.lists(names, min_size=14, max_size=14, unique_by=str.lower))
    pool = iter(used)
    model_name = next(pool)
    top: list = []
    body: list = []
    imports: set[str] = set()

    # dimension, base and target
    shape = draw(st.sampled_from([(1,), (2,), (3,), (4,), (2,), (2,), (1, 2), (2, 3), (1, 1, 2)]))
    dim = 1
    for s in shape:
        dim *= s
    toy = dim == 2 and TOY2D and draw(st.booleans())
    if len(shape) == 1 and draw(st.booleans()):
        dim_tokens = ["dim", str(shape[0])]
    else:
        dim_tokens = ["dim", "[", *sum(([str(s), ","] for s in shape), [])[:-1], "]"]
    if not toy or draw(st.integers(0, 2)):
        body.append(dim_tokens)
    # An SDE sampler needs the score: from a network on noise (with latent z in the
    # interpolant), or else through an isotropic normal base with an independent coupling.
    uses_z = draw(st.booleans())
    sde = draw(st.integers(0, 2)) == 0
    gaussian_base = sde and not uses_z
    if gaussian_base:
        base = draw(call_tokens("normal", [("mean", tokens(draw(nice(NICE_MEANS, True)))),
                                           ("scale", tokens(draw(nice(NICE_SCALES))))]))
    else:
        base = draw(call_tokens("normal", [("mean", draw(vector_arg(dim, False, True))),
                                           ("scale", draw(vector_arg(dim, True, True)))]))
    body.append(["base", "x0", "~", *base])
    if toy:
        imports.add("toy2d")
        decl = draw(st.sampled_from(TOY2D))
        target = draw(call_tokens(decl.name, [(p, [draw(nonzero("0.01", "0.9"))])
                                              for p in _decl_params(decl)]))
    else:
        target = draw(call_tokens("normal", [("mean", draw(vector_arg(dim, False))),
                                             ("scale", draw(vector_arg(dim, True)))]))
    body.append(["target", "x1", "~", *target])

    coupling = draw(st.sampled_from([None, "independent"] if gaussian_base else
                                    [None, "independent", "minibatch_ot", "sinkhorn"]))
    if coupling == "sinkhorn":
        body.append(["coupling", *draw(call_tokens("sinkhorn",
                                                   [("reg", [draw(nonzero("0.01", "2"))])]))])
    elif coupling is not None:
        body.append(["coupling", coupling] if draw(st.booleans()) else
                    ["coupling", coupling, "(", ")"])

    # scalar functions: the first ones at top level, the rest in the model
    funcs: list[tuple[str, int, str | None]] = []
    n_funcs = draw(st.integers(0, 4))
    n_top = draw(st.integers(0, n_funcs))
    for i in range(n_funcs):
        name = next(pool)
        param = draw(st.sampled_from(PARAM_NAMES))
        extra = None
        if draw(st.integers(0, 3)) == 0:
            extra = draw(st.sampled_from([p for p in PARAM_NAMES if p != param]))
        callable_ = funcs[:n_top] if i < n_top else funcs
        variables = {param} | ({extra} if extra else set())
        body_expr = draw(expr(variables, callable_, draw(st.integers(0, 2))))
        head = [name, "(", param]
        if extra:
            head += [",", extra, "=", draw(literal("0", "5", places=1))]
        seg = [*head, ")", "=", *tokens(body_expr)]
        (top if i < n_top else body).append(seg)
        funcs.append((name, 1, extra))

    # the interpolant
    t_funcs = funcs
    if INTERPOLANTS and draw(st.integers(0, 3)) == 0:
        imports.add("interpolants")
        decl = draw(st.sampled_from(INTERPOLANTS))
        pnames = [p.name for p in decl.params or ()]
        named = draw(call_tokens(decl.name, [(p, [draw(nonzero("0.1", "3"))]) for p in pnames]))
        latent = any(isinstance(n, S.Name) and n.id == "z" for n in S.walk(decl.body))
        if latent and gaussian_base:
            named, latent = ["linear"], False  # keep the score determined by the base
            if not any(d.name == "linear" for d in INTERPOLANTS):
                named = ["trig"]
        if uses_z and not latent:
            gamma = draw(gamma_expr(t_funcs))
            interp = [*named, "+", *tokens(gamma, 2), "*", "z"]
        else:
            interp = named
            uses_z = latent
    else:
        alpha = bin_("*", ("paren", bin_("-", num("1"), ("name", "t"))),
                     call("exp", bin_("*", ("name", "t"), draw(bounded({"t"}, t_funcs, 1)))))
        beta = bin_("*", ("name", "t"),
                    call("exp", bin_("*", ("paren", bin_("-", num("1"), ("name", "t"))),
                                     draw(bounded({"t"}, t_funcs, 1)))))
        if draw(st.integers(0, 2)) == 0:
            alpha = bin_("-", num("1"), ("name", "t"))
        if draw(st.integers(0, 2)) == 0:
            beta = ("name", "t")
        terms = [(alpha, "x0"), (beta, "x1")]
        if uses_z:
            terms.append((draw(gamma_expr(t_funcs)), "z"))
        terms = draw(st.permutations(terms))
        interp = []
        for i, (coef, var) in enumerate(terms):
            if i:
                interp.append("+")
            if draw(st.booleans()):
                interp += [*tokens(coef, 2), "*", var]
            else:
                interp += [var, "*", *tokens(coef, 3)]
    iname = draw(st.sampled_from(["x_t", "x_t", "xt", "path"]))
    body.append(["interpolant", iname, "=", *interp])

    # noise schedules
    noises = []
    for _ in range(draw(st.integers(0, 2))):
        name = next(pool)
        param = draw(st.sampled_from(PARAM_NAMES))
        eps = draw(positive({param}, [], 2))
        if draw(st.booleans()):
            eps = bin_("*", bin_("*", ("name", param), ("paren", bin_("-", num("1"),
                                                                       ("name", param)))), eps)
        body.append(["noise", name, "(", param, ")", "=", *tokens(eps)])
        noises.append(name)

    # networks and the objective
    networks = []
    for _ in range(draw(st.integers(2 if sde and uses_z else 1, 3))):
        name = next(pool)
        ctor = draw(st.sampled_from(["mlp", "resmlp"]))
        decl = PRELUDE[ctor]
        args = []
        for p in decl.params:
            if p.type is not None and p.type.choices:
                args.append((p.name, [draw(st.sampled_from(p.type.choices))]))
            else:
                value = draw(st.sampled_from(["int", "expr"]))
                if value == "int":
                    args.append((p.name, [draw(literal("1", "512", integer=True))]))
                else:
                    a, b = draw(st.integers(1, 16)), draw(st.integers(1, 16))
                    args.append((p.name, [str(a), draw(st.sampled_from("*+")), str(b)]))
        body.append(["network", name, "=", *draw(call_tokens(ctor, args))])
        networks.append(name)
    targets = ["velocity", "potential"]
    items = []
    for i, name in enumerate(networks):
        if i == 0:
            target = draw(st.sampled_from(targets))
        elif i == 1 and uses_z and sde:
            target = "noise"
        else:
            target = draw(st.sampled_from(["velocity", "data", "base", "potential"]
                                          + (["noise", "score"] if uses_z else [])))
        if i and target in ("velocity", "potential"):
            target = "data"
        items.append([name, "~", target])
    if draw(st.booleans()):
        # 0 <= low < high <= 1, with room left inside [0.001, 0.999] (where the compiler keeps
        # t when the interpolant's derivatives are unbounded at an end)
        low = draw(st.sampled_from(["0", "0.001", "0.1", "0.25", "0.4"]))
        high = draw(st.sampled_from(["0.6", "0.75", "0.9", "0.999", "1"]))
        low = draw(st.sampled_from(_spellings(Decimal(low))))
        high = draw(st.sampled_from(_spellings(Decimal(high))))
        if draw(st.integers(0, 3)) == 0:
            items.append(["time", "~", *draw(call_tokens(
                "logit_normal", [("mean", [draw(literal("0", "2", places=1))]),
                                 ("std", [draw(nonzero("0.1", "3"))])]))])
        else:
            items.append(["time", "~", *draw(call_tokens(
                "uniform", [("low", [low]), ("high", [high])], bare_ok=True))])
    if draw(st.booleans()):
        p = draw(st.sampled_from(PARAM_NAMES))
        items.append(["weight", "(", p, ")", "=", *tokens(draw(positive({p}, funcs, 2)))])
    body.append(("block", ["objective", "{"], draw(st.permutations(items))))

    # samplers
    for _ in range(draw(st.integers(0, 3))):
        name = next(pool)
        kind = draw(st.sampled_from(["euler", "heun", "rk4", "midpoint", "dopri5"]
                                    + (["euler_maruyama"] * 2 if sde else [])))
        if kind == "dopri5":
            args = [("rtol", [draw(nonzero("0.0001", "0.1"))]),
                    ("atol", [draw(nonzero("0.0001", "0.1"))])]
            required = ()
        elif kind == "euler_maruyama":
            eps = [draw(st.sampled_from(noises))] if noises and draw(st.integers(0, 3)) else \
                [draw(literal("0", "2", places=2))]
            args = [("steps", [draw(literal("1", "1000", integer=True))]), ("eps", eps),
                    ("direction", [draw(st.sampled_from(["forward", "backward"]))])]
            required = ("eps",)
        else:
            args = [("steps", [draw(literal("1", "200", integer=True))])]
            required = ()
        body.append(["sampler", name, "=", *draw(call_tokens(kind, args, required))])

    # train
    if draw(st.booleans()):
        train = []
        keys = draw(st.lists(st.sampled_from(
            ["steps", "batch", "optimizer", "lr_schedule", "ema", "clip", "seed", "precision",
             "checkpoint_every", "log_every"]), unique=True, max_size=10))
        for key in keys:
            if key in ("steps", "batch", "checkpoint_every", "log_every"):
                value = [draw(literal("1", "100000", integer=True))]
            elif key == "seed":
                value = [draw(literal("0", "99999", integer=True))]
            elif key == "ema":
                value = [draw(literal("0", "0.999", places=3))]
            elif key == "clip":
                value = [draw(literal("0", "10", places=1))]
            elif key == "precision":
                value = [draw(st.sampled_from(["float32", "bfloat16"]))]
            elif key == "optimizer":
                opt = draw(st.sampled_from(["adam", "adamw", "sgd"]))
                ranges = {"lr": ("0.00001", "0.1"), "b1": ("0.5", "0.99"), "b2": ("0.9", "0.9999"),
                          "eps": ("0.00000001", "0.001"), "weight_decay": ("0", "0.1"),
                          "momentum": ("0", "0.99")}
                args = [(p, [draw(literal(*ranges[p], places=8))]) for p in
                        _decl_params(PRELUDE[opt]) if p in ranges]
                value = draw(call_tokens(opt, args))
            else:
                if not LR_SCHEDULES:
                    continue
                decl = draw(st.sampled_from(LR_SCHEDULES))
                args = [(p.name, [draw(literal("0", "100", integer=True))] if p.type.name == "int"
                         else [draw(literal("0", "0.5", places=3))]) for p in decl.params]
                value = draw(call_tokens(decl.name, args))
            train.append([key, *value])
        body.append(("block", ["train", "{"], train))

    body = draw(st.permutations(body))
    items = [["import", "stdlib", ".", m] for m in sorted(imports)]
    items += top
    items = draw(st.permutations(items))
    at = draw(st.integers(0, len(items)))
    items.insert(at, ("block", ["model", model_name, "{"], body))
    return items


@st.composite
def gamma_expr(draw, funcs):
    """gamma(t) > 0 inside (0, 1) and gamma(0) = gamma(1) = 0."""
    shape = draw(st.sampled_from(["sqrt", "poly"]))
    ends = ("paren", bin_("*", ("name", "t"), ("paren", bin_("-", num("1"), ("name", "t")))))
    factor = draw(positive({"t"}, funcs, 1))
    if shape == "sqrt":
        return bin_("*", factor, call("sqrt", ends[1]))
    return bin_("*", factor, ends)


# --- rendering with random layout ------------------------------------------------------------

COMMENT_CHARS = st.characters(blacklist_characters="\n", blacklist_categories=("Cs",))
comment_texts = st.text(COMMENT_CHARS, max_size=12)


def render(items, rnd: random.Random, comments: list[str], anywhere: bool = True) -> str:
    """Join tokens with random whitespace. ``comments`` are placed at random token gaps: any gap,
    or (``anywhere=False``) only where a statement or a block's closing brace begins."""
    flat: list[tuple[str, bool]] = []  # (token, starts a statement)

    def walk(segs):
        for seg in segs:
            if isinstance(seg, tuple):
                _, head, inner = seg
                for i, tok in enumerate(head):
                    flat.append((tok, i == 0))
                walk(inner)
                flat.append(("}", True))
            else:
                for i, tok in enumerate(seg):
                    flat.append((tok, i == 0))

    walk(items)
    gaps = len(flat) + 1
    allowed = [i for i in range(gaps) if anywhere or i == len(flat) or flat[i][1]]
    where: dict[int, list[str]] = {}
    for c in comments:
        where.setdefault(rnd.choice(allowed), []).append(c)
    out = []
    for i in range(gaps):
        tok, starts = flat[i] if i < len(flat) else ("", True)
        prev = flat[i - 1][0] if i else ""
        sep = ""
        for c in where.get(i, []):
            sep += rnd.choice([" ", "", "\t", "  "]) + "#" + c + rnd.choice(["\n", "\r\n"])
            sep += rnd.choice(["", "    ", "\t"])
        if i and not sep:
            if starts:
                sep = rnd.choice(["\n", "\n", "\n    ", "\n\n", "\r\n", " ", "\n\f", "\n\t\t"])
            else:
                glue_ok = prev in PUNCT or tok in PUNCT or tok == ""
                sep = rnd.choice([" ", " ", " ", "\t", "\n", "\n        ", "  "]
                                 + (["", "", ""] if glue_ok else []))
        elif i == 0 and rnd.random() < 0.2:
            sep = rnd.choice(["\n", " ", "\n\n"]) + sep
        out.append(sep + tok)
    text = "".join(out)
    return text + rnd.choice(["", "\n", "\n\n", " "])


@st.composite
def model_texts(draw, anywhere: bool = True):
    items = draw(models())
    comments = draw(st.lists(comment_texts, max_size=6))
    rnd = draw(st.randoms(use_true_random=False))
    return render(items, rnd, comments, anywhere)


# --- helpers ---------------------------------------------------------------------------------

def comment_texts_of(module: S.Module) -> Counter:
    return Counter(c.text for c in module.comments)


COMPILE_LIMIT_S = 10


def compile_clean(text: str, folder):
    with time_limit(COMPILE_LIMIT_S, "compiling\n" + text):
        result = compile_text(text, file="m.tfm", folder=folder)
    errors = [(d.message, d.span) for d in result.errors]
    assert not errors, f"errors for:\n{text}\n{errors}"
    assert result.model is not None, text
    return result


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("roundtrip")


# --- properties on generated models -----------------------------------------------------------

@settings(max_examples=12, **SETTINGS)  # each compiles twice (about 1.5 s); fmt alone: below
@given(text=model_texts())
def test_generated_models_compile_and_survive_fmt(text, folder):
    original = compile_clean(text, folder)
    tree = parse(text, "m.tfm")
    formatted = format_module(tree)
    again = parse(formatted, "m.tfm")
    assert again == tree, f"fmt changed the syntax tree of:\n{text}\n---- formatted:\n{formatted}"
    result = compile_clean(formatted, folder)
    assert result.model == original.model, f"fmt changed the IR of:\n{text}\n----\n{formatted}"
    assert sorted((d.severity, d.message) for d in result.diagnostics) == \
        sorted((d.severity, d.message) for d in original.diagnostics)


@settings(max_examples=80, **SETTINGS)
@given(text=model_texts())
def test_fmt_is_idempotent(text):
    tree = parse(text, "m.tfm")
    formatted = format_module(tree)
    again = parse(formatted, "m.tfm")
    assert again == tree, f"fmt changed the syntax tree of:\n{text}\n---- formatted:\n{formatted}"
    assert format_module(again) == formatted, \
        f"fmt is not idempotent on:\n{text}\n---- first pass:\n{formatted}"


def _check_comments_survive(text):
    tree = parse(text, "m.tfm")
    formatted = format_module(tree)
    assert comment_texts_of(parse(formatted, "m.tfm")) == comment_texts_of(tree), \
        f"fmt lost, merged or changed comments of:\n{text}\n---- formatted:\n{formatted}"


@settings(max_examples=80, **SETTINGS)
@given(text=model_texts(anywhere=False))
def test_fmt_keeps_comments_between_statements(text):
    _check_comments_survive(text)


# Found by test_fmt_keeps_comments_anywhere (and fixed in 999b659): fmt merged a comment written
# inside a multi-line statement with that statement's end-of-line comment, so that
# 'f(t) = #a\n  t #b\n' became 'f(t) = t  #a  #b', one comment '#a  #b' instead of two.
@settings(max_examples=120, **SETTINGS)
@given(text=model_texts(anywhere=True))
def test_fmt_keeps_comments_anywhere(text):
    _check_comments_survive(text)


@pytest.mark.parametrize("text", ["f(t) = #a\n  t #b\n", "model M {\n    dim #a\n    2 #b\n}\n",
                                  "f(t) = #a\n t #b\n #c\n", "model M { #a\n dim 2 } #b\n"])
def test_fmt_keeps_comments_inside_a_statement_minimal(text):
    _check_comments_survive(text)
    formatted = format_module(parse(text))
    assert format_module(parse(formatted)) == formatted


# --- the files of the repository ------------------------------------------------------------

@pytest.mark.parametrize("path", EXAMPLES + STDLIB, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_repository_files_fmt_idempotent_and_same_tree(path):
    text = path.read_text()
    tree = parse(text, path.name)
    formatted = format_module(tree)
    assert format_module(parse(formatted, path.name)) == formatted
    assert parse(formatted, path.name) == tree
    assert comment_texts_of(parse(formatted, path.name)) == comment_texts_of(tree)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_fmt_keeps_the_ir(path):
    text = path.read_text()
    formatted = format_module(parse(text, path.name))
    before = compile_text(text, file=path.name, folder=path.parent)
    after = compile_text(formatted, file=path.name, folder=path.parent)
    assert not before.errors
    assert before.model is not None
    assert after.model == before.model
    assert [(d.severity, d.message) for d in after.diagnostics] == \
        [(d.severity, d.message) for d in before.diagnostics]


def _probes(module: S.Module) -> list[str]:
    """Models that use what a stdlib file declares, so that its meaning enters an IR."""
    decls = [i for i in module.items if isinstance(i, (S.FunctionDecl, S.InterpolantDecl,
                                                       S.PrimitiveDecl))]
    base = ("model Probe {{\n dim {dim}\n base x0 ~ normal(0, 1)\n target x1 ~ {target}\n"
            " interpolant x_t = {interpolant}\n network b = mlp()\n"
            " objective {{ b ~ velocity {extra} }}\n {more}\n}}\n")
    linear = "(1 - t) * x0 + t * x1"
    out = []
    funcs = [d for d in decls if isinstance(d, S.FunctionDecl) and not d.is_noise]
    if funcs:  # functions enter the IR through the weight (which nothing simplifies)
        calls = " + ".join(f"{d.name}({', '.join('t' for p in d.params if p.default is None)})"
                           for d in funcs)
        out.append(base.format(dim=2, target="normal(0, 1)", interpolant=linear, more="",
                               extra=f"weight(t) = 1 + ({calls})^2"))
    for d in decls:
        if isinstance(d, S.InterpolantDecl):
            out.append(base.format(dim=2, target="normal(0, 1)", interpolant=d.name, extra="",
                                   more=""))
        elif isinstance(d, S.PrimitiveDecl) and d.kind == "distribution" and \
                d.dim is not None and all(p.default is not None for p in d.params):
            out.append(base.format(dim=2, target=d.name, interpolant=linear, extra="",
                                   more="").replace(" dim 2\n", ""))
    if any(isinstance(d, S.PrimitiveDecl) and d.name == "mlp" for d in decls):  # the prelude
        more = ("coupling sinkhorn\n sampler a = heun\n sampler b2 = dopri5\n"
                " sampler c = rk4\n network r = resmlp()\n"
                " train { optimizer adamw lr_schedule " +
                (LR_SCHEDULES[-1].name if LR_SCHEDULES else "constant_lr") + " }")
        out.append(base.format(dim=2, target="normal(0, 1)", interpolant=linear,
                               extra="r ~ data time ~ logit_normal", more=more))
    return out


@pytest.mark.parametrize("path", STDLIB, ids=lambda p: p.name)
def test_stdlib_fmt_keeps_the_meaning(path):
    text = path.read_text()
    formatted = format_module(parse(text, path.name))
    plain_before = compile_text(text, file=path.name, folder=STDLIB_DIR)
    plain_after = compile_text(formatted, file=path.name, folder=STDLIB_DIR)
    assert not plain_before.errors and not plain_after.errors
    probes = _probes(parse(text, path.name))
    assert probes or path.name == "schedules.tfm"
    for probe in probes:
        before = compile_text(text + "\n" + probe, file=path.name, folder=STDLIB_DIR)
        after = compile_text(formatted + "\n" + probe, file=path.name, folder=STDLIB_DIR)
        assert before.model is not None, [d.message for d in before.errors]
        assert after.model == before.model, probe
