"""``tfmc``, the command line. Exit status: 0 clean, 1 errors in the user's files, 2 bad usage,
3 an internal compiler error (a bug in tfm: please report it)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import traceback
from pathlib import Path

from .. import __version__
from ..dsl.suggest import did_you_mean
from ..errors import InternalCompilerError, TfmError, render
from ..dsl.format import format_module
from ..dsl.parse import parse
from ..compiler import ir
from ..compiler.pipeline import compile_file, compile_model, load_model

EXIT_OK, EXIT_USER, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # (for worker processes)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return args.run(args)
    except TfmError as err:
        print(err.render(), file=sys.stderr)
        return EXIT_USER
    except BrokenPipeError:  # pragma: no cover - e.g. piped into head
        return EXIT_OK
    except KeyboardInterrupt:
        print(_interrupted(args), file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 - a bug of ours: one clear line, never the user's
        if not isinstance(err, InternalCompilerError):
            err = InternalCompilerError(f"{type(err).__name__}: {err}")
        if os.environ.get("TFM_DEBUG"):
            traceback.print_exc()
        print(f"Internal compiler error: {err}\nThis is a bug in tfm, not in your model; "
              "please report it with the model file (set TFM_DEBUG=1 for the traceback).",
              file=sys.stderr)
        return EXIT_INTERNAL


def _interrupted(args) -> str:
    """What Ctrl-C leaves: for ``tfmc run``, the checkpoint in the run folder (and its step)
    and the command that continues it, or that there is none yet."""
    if getattr(args, "command", None) != "run":
        return "Interrupted."
    from .run import default_out

    from ..backends.runtime import checkpoint

    out = Path(args.out) if args.out else default_out(Path(args.file))
    try:
        step = checkpoint.step_of(out / checkpoint.NAME)
    except Exception:  # noqa: BLE001 - no checkpoint, or one being written when interrupted
        return (f"Interrupted before a checkpoint was written: nothing in '{out}' can be "
                "resumed; run it again (the train block's checkpoint_every sets how often a "
                "checkpoint is written).")
    same = "".join(f" --{name} {value}" for name, value in (
        ("backend", None if args.backend == "jax" else args.backend),
        ("devices", args.devices)) if value is not None)  # the run's own options
    return (f"Interrupted. The checkpoint of step {step} is kept in '{out}'; continue with "
            f"`tfmc run {args.file}{same} --out {out} --resume`.")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tfmc", description="The tfm compiler: check, format and "
                                "inspect transport-based generative models written in tfm.")
    p.add_argument("--version", action="version", version=f"tfmc {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("check", help="report every syntax and semantic error and warning",
                       description="Parse, resolve and check each FILE; print every diagnostic. "
                       "Exit 0 when no file has errors, 1 otherwise.")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.add_argument("--json", action="store_true", help="print diagnostics as JSON lines")
    c.add_argument("--pedantic", action="store_true",
                   help="also print advice (unused declarations, redundant networks)")
    c.set_defaults(run=_check)

    f = sub.add_parser("fmt", help="rewrite files in the canonical layout",
                       description="Rewrite each FILE in the canonical layout (comments kept). "
                       "With --check, change nothing and exit 1 if a file would change.")
    f.add_argument("files", nargs="+", metavar="FILE")
    f.add_argument("--check", action="store_true", help="only report files that would change")
    f.add_argument("--stdout", action="store_true", help="print the result instead of writing")
    f.set_defaults(run=_fmt)

    g = sub.add_parser("graph", help="print the declaration graph",
                       description="Print the model's declarations in evaluation order with what "
                       "each uses, or the graph in Graphviz DOT with --dot.")
    g.add_argument("file", metavar="FILE")
    g.add_argument("--dot", action="store_true", help="Graphviz DOT output")
    g.set_defaults(run=_graph)

    i = sub.add_parser("info", help="summarise a model",
                       description="Summarise the model: shape, densities, coupling, "
                       "interpolant, networks, objective, samplers, training settings.")
    i.add_argument("file", metavar="FILE", help="a .tfm file, or a run folder (also says how it "
                   "was trained)")
    i.add_argument("--json", action="store_true", help="machine-readable JSON")
    i.set_defaults(run=_info)

    pl = sub.add_parser("plot", help="plot an array of samples",
                        description="Plot what `tfmc sample` wrote: points (N, d) by their first "
                        "two coordinates, or images (N, C, H, W) as a grid; with --reference, "
                        "beside (images) or under (points) other samples, e.g. the data.")
    pl.add_argument("samples", metavar="SAMPLES.npy")
    pl.add_argument("--reference", metavar="REF.npy", help="samples to show with them")
    pl.add_argument("--title", default=None, help="default: the file name")
    pl.add_argument("-o", "--out", metavar="OUT.png", required=True)
    pl.set_defaults(run=_plot)

    lib = sub.add_parser("stdlib", help="list the standard library",
                         description="List every module of the standard library (the prelude "
                         "first, which every file sees), each declaration's signature with its "
                         "parameters' types and defaults, and its one-line doc.")
    lib.add_argument("modules", metavar="MODULE", nargs="*",
                     help="only these modules (prelude, interpolants, targets, ...)")
    lib.add_argument("--json", action="store_true", help="machine-readable JSON")
    lib.set_defaults(run=_stdlib)

    d = sub.add_parser("derive", help="print what the compiler derives",
                       description="Print the interpolant and its time derivative, every "
                       "regression target and loss, the conversions between velocity, score, "
                       "denoiser and predictions, the SDE drifts, and the checks' findings.")
    d.add_argument("file", metavar="FILE")
    d.add_argument("--format", choices=("text", "latex", "json"), default="text")
    d.add_argument("--pedantic", action="store_true", help="also report advice")
    d.set_defaults(run=_derive)

    from ..backends import BACKENDS as backends
    co = sub.add_parser("compile", help="emit the model's program for a backend",
                        description="Write DIR/<model>_<backend>.py, a readable module holding "
                        "the model's maths and settings; tfm's runtime trains and samples it.")
    co.add_argument("file", metavar="FILE")
    co.add_argument("--backend", choices=backends, default="jax")
    co.add_argument("-o", "--out", metavar="DIR", default="build")
    co.set_defaults(run=_compile_command)

    r = sub.add_parser("run", help="train a model and write a run folder",
                       description="Compile FILE, train it and write into DIR the checkpoint, "
                       "metrics.json, samples.npy, samples.png, loss.png and config.json.")
    r.add_argument("file", metavar="FILE")
    r.add_argument("--backend", choices=backends, default="jax")
    r.add_argument("--steps", type=_positive, help="train to this step (default: the train block)")
    r.add_argument("--seed", type=_natural, help="seed (default: the train block's)")
    r.add_argument("--out", metavar="DIR", help="run folder (default: runs/<file name>)")
    r.add_argument("--resume", action="store_true", help="continue from DIR's checkpoint")
    r.add_argument("--force", action="store_true",
                   help="replace the run DIR already holds (without it, such a DIR is an error)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    par = r.add_argument_group("several devices (docs/distributed.md)")
    par.add_argument("--devices", type=_positive, metavar="N",
                     help="train data parallel on N devices: JAX a mesh of N devices in this "
                     "process (on a CPU, N host devices); torch N processes, one per device")
    par.add_argument("--coordinator", metavar="HOST:PORT",
                     help="JAX on several machines: the address of process 0 (default: "
                     "JAX_COORDINATOR_ADDRESS or the cluster's variables)")
    par.add_argument("--processes", type=_positive, metavar="P",
                     help="JAX on several machines: how many processes take part")
    par.add_argument("--process-id", type=_natural, metavar="K",
                     help="JAX on several machines: this process's index, 0 .. P-1")
    r.set_defaults(run=_run)

    sa = sub.add_parser("sample", help="draw samples from a trained run",
                        description="Write an (N, *shape) float32 array of samples to OUT.npy.")
    sa.add_argument("run_dir", metavar="RUN_DIR")
    sa.add_argument("-n", type=_positive, default=1000, help="number of samples (1000)")
    sa.add_argument("--sampler", metavar="NAME", help="a sampler of the model (default: first)")
    sa.add_argument("--seed", type=_natural, default=0)
    sa.add_argument("--backend", choices=backends, help="default: the run's backend")
    sa.add_argument("-o", "--out", metavar="OUT.npy", required=True)
    sa.add_argument("--trajectory", metavar="PATH.npy",
                    help="also write the states at every step, (steps + 1, N, *shape)")
    _condition_arguments(sa)
    sa.add_argument("--guidance", type=float, metavar="W", default=0.0,
                    help="classifier-free guidance: the field (1 + W) b(t, x | c) - W b(t, x | "
                    "none) (default 0: the class's own field)")
    sa.add_argument("--observed", metavar="VALUES",
                    help="inpainting: sample given some coordinates, as comma-separated "
                    "numbers with nan for those not observed (\"3,nan\"), or a .npy file of "
                    "one point or one per point (N, *shape), NaN where not observed")
    sa.set_defaults(run=_sample)

    lp = sub.add_parser("logprob", help="log-densities of points under a trained run",
                        description="Write the (N,) log-densities of the points in IN.npy.")
    lp.add_argument("run_dir", metavar="RUN_DIR")
    lp.add_argument("points", metavar="IN.npy")
    lp.add_argument("--sampler", metavar="NAME", help="an ODE sampler of the model")
    exact = lp.add_mutually_exclusive_group()
    exact.add_argument("--hutchinson", action="store_true",
                       help="estimate the divergence (default: exact up to 32 dimensions)")
    exact.add_argument("--exact", action="store_true",
                       help="exact divergence in any dimension (one derivative per dimension)")
    lp.add_argument("--seed", type=_natural, default=0)
    lp.add_argument("--backend", choices=backends, help="default: the run's backend")
    lp.add_argument("-o", "--out", metavar="OUT.npy", required=True)
    _condition_arguments(lp)
    lp.set_defaults(run=_logprob)
    return p


def _positive(text: str) -> int:
    value = _natural(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _natural(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _warn(result) -> None:
    for d in result.warnings:
        if not d.pedantic:
            print(render(d, result.sources) + "\n", file=sys.stderr)


def _compile_command(args) -> int:
    from .run import backend_emit

    result = compile_model(args.file)
    _warn(result)
    path = backend_emit(args.backend).write(result.model, args.out)
    print(path)
    return EXIT_OK


def _run(args) -> int:
    from .run import default_out, run

    compilation = compile_model(args.file)
    several = args.coordinator is not None or args.processes is not None \
        or args.process_id is not None
    if several and args.backend != "jax":
        parser_error = "--coordinator, --processes and --process-id are JAX's; with torch, "\
            "start the processes with torchrun (docs/distributed.md)."
        print(f"tfmc run: error: {parser_error}", file=sys.stderr)
        return EXIT_USAGE
    if args.backend == "torch" and (args.devices or 1) > 1 and "WORLD_SIZE" not in os.environ:
        from .launch import kept, launch  # torch: one worker process per device

        _warn(compilation)
        out = Path(args.out) if args.out else default_out(Path(args.file))
        trains = not (compilation.model.sampling and not compilation.model.flow)
        return launch(args.argv, args.devices, lambda: kept(out, trains))
    if args.backend == "jax" and args.devices:  # N devices of a CPU (before JAX starts)
        flag = "--xla_force_host_platform_device_count"
        if flag not in os.environ.get("XLA_FLAGS", ""):
            os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                       + f" {flag}={args.devices}").strip()
    devices, main = args.devices, os.environ.get("RANK", "0") == "0"
    if several:  # JAX on several machines: every process's devices, by default
        from ..backends.jax.runtime.sharding import initialize

        devices, main = initialize(args.coordinator, args.processes, args.process_id, devices)
    if main:
        _warn(compilation)
    result = run(args.file, args.backend, args.out, steps=args.steps, seed=args.seed,
                 resume=args.resume, force=args.force, progress=not args.quiet,
                 log=lambda m: print(m, file=sys.stderr), compilation=compilation,
                 devices=devices)
    if result is not None:  # (None: a process other than the first, which writes nothing)
        print(json.dumps(result, indent=1))
    return EXIT_OK


def _save_npy(path: str, array) -> None:
    import numpy as np

    from ..errors import Diagnostic, TfmDataError

    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp.npy")
        np.save(tmp, array)
        tmp.replace(target)
    except OSError as err:
        raise TfmDataError(Diagnostic("Data", f"Cannot write '{path}': {err.strerror}.")) from None


def _plot(args) -> int:
    from ..backends.runtime import plots
    from ..backends.runtime.data import load_array

    samples = load_array(args.samples)
    reference = load_array(args.reference) if args.reference else None
    if reference is not None and reference.shape[1:] != samples.shape[1:]:
        from ..errors import Diagnostic, TfmDataError
        raise TfmDataError(Diagnostic(
            "Data", f"'{args.reference}' holds samples of shape {list(reference.shape[1:])}, "
            f"'{args.samples}' of shape {list(samples.shape[1:])}."))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plots.samples(out, samples, reference, args.title or Path(args.samples).name)
    print(f"{out}: {len(samples)} samples of shape {list(samples.shape[1:])}", file=sys.stderr)
    return EXIT_OK


def _stdlib(args) -> int:
    from ..compiler import library
    from ..errors import Diagnostic, TfmSemanticError

    known = library.modules()
    for name in args.modules:
        if name.removeprefix("stdlib.") not in known:
            raise TfmSemanticError(Diagnostic(
                "Semantic", f"The standard library has no module '{name}'.",
                suggestion=did_you_mean(name, known) or f"Its modules: {', '.join(known)}."))
    chosen = [m.removeprefix("stdlib.") for m in args.modules] or known
    if args.json:
        print(json.dumps([e.to_json() for m in chosen for e in library.entries(m)], indent=1))
    else:
        print(library.listing(chosen), end="")
    return EXIT_OK


def _condition_arguments(parser) -> None:
    """--label K / --labels FILE.npy: the classes of a model conditioned on labels."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--label", type=_natural, metavar="K",
                       help="a model trained on labelled data: every point of class K")
    group.add_argument("--labels", metavar="LABELS.npy",
                       help="a model trained on labelled data: one class per point, (N,); on "
                       "condition vectors: one vector for all (k,) or one per point (N, k)")


def _condition(args):
    """The classes --label or --labels give (None: neither)."""
    if args.label is not None:
        return args.label
    if args.labels is not None:
        import numpy as np

        from ..errors import Diagnostic, TfmDataError
        try:
            return np.load(args.labels, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise TfmDataError(Diagnostic("Data", f"Cannot read the labels '{args.labels}': "
                                          f"{err}", suggestion="Give a .npy file of one whole "
                                          "number per point.")) from None
    return None


def _observed(text: str, shape: tuple):
    """--observed: comma-separated numbers (nan: not observed) of one point, or a .npy file."""
    import numpy as np

    from ..errors import Diagnostic, TfmDataError
    if text.endswith(".npy"):
        try:
            return np.load(text, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise TfmDataError(Diagnostic("Data", f"Cannot read the observed values '{text}': "
                                          f"{err}", suggestion="Give a .npy file of one point "
                                          "or one per point, NaN where not observed.")) from None
    try:
        values = np.array([float(v) for v in text.split(",")], np.float32)
    except ValueError:
        raise TfmDataError(Diagnostic(
            "Data", f"--observed '{text}' is not a list of numbers.",
            suggestion="Write one number per coordinate, nan where not observed: "
            "--observed \"3,nan\"; or give a .npy file.")) from None
    if values.size != math.prod(shape):
        raise TfmDataError(Diagnostic(
            "Data", f"--observed gives {values.size} numbers; the model's samples have "
            f"{math.prod(shape)} coordinates (shape {list(shape)}).",
            suggestion="Write one number per coordinate, nan where not observed."))
    return values.reshape(shape)


def _sample(args) -> int:
    import numpy as np

    from .run import open_run

    model = open_run(args.run_dir, args.backend)
    cond = _condition(args)
    observed = None if args.observed is None else _observed(args.observed, model.shape)
    if observed is not None and observed.ndim == len(model.shape) + 1:
        args.n = len(observed)  # one point's observations per sample
    per_point = 2 if model.spec.condition_size else 1  # the axes of one condition per point
    if cond is not None and getattr(cond, "ndim", 0) == per_point:
        args.n = len(cond)  # a file of one class, or one vector, per point
    condition = {"cond": cond, "guidance": args.guidance} if cond is not None or \
        args.guidance else {}
    if observed is not None:
        condition["observed"] = observed
    if args.trajectory and model.spec.sampling:
        from ..errors import Diagnostic, TfmSemanticError
        raise TfmSemanticError(Diagnostic(
            "Semantic", "MCMC and SMC samplers have no trajectory from base to target.",
            suggestion="Leave out --trajectory; the run folder holds trace plots."))
    if args.trajectory:
        samples, path = model.sample(args.n, sampler=args.sampler, seed=args.seed,
                                     trajectory=True, **condition)
        _save_npy(args.trajectory, path.astype(np.float32))
    else:
        samples = model.sample(args.n, sampler=args.sampler, seed=args.seed, **condition)
    _save_npy(args.out, samples.astype(np.float32))
    print(f"{args.out}: {samples.shape[0]} samples of shape {samples.shape[1:]}", file=sys.stderr)
    return EXIT_OK


def _logprob(args) -> int:
    import numpy as np

    from .run import open_run
    from ..backends.runtime.data import load

    model = open_run(args.run_dir, args.backend)
    points_path = Path(args.points).resolve()
    points = load(points_path.name, points_path.parent, model.shape)
    exact = False if args.hutchinson else (True if args.exact else None)
    cond = _condition(args)
    values = model.log_prob(points, sampler=args.sampler, exact=exact, seed=args.seed,
                            **({"cond": cond} if cond is not None else {}))
    _save_npy(args.out, values.astype(np.float32))
    print(f"{args.out}: {len(values)} log-densities, mean {float(np.mean(values)):.4f}",
          file=sys.stderr)
    return EXIT_OK


def _check(args) -> int:
    status = EXIT_OK
    for name in args.files:
        try:
            result = compile_file(name)
        except TfmError as err:
            _print_diagnostics(err.diagnostics, err.sources, args.json)
            status = EXIT_USER
            continue
        shown = [d for d in result.diagnostics if args.pedantic or not d.pedantic]
        _print_diagnostics(shown, result.sources, args.json)
        if result.errors:
            status = EXIT_USER
        elif not args.json:
            n = sum(d.severity == "warning" for d in shown)
            print(f"{name}: ok" + (f" ({n} warning{'s' * (n != 1)})" if n else ""))
    return status


def _print_diagnostics(diagnostics, sources, as_json: bool) -> None:
    for d in diagnostics:
        if as_json:
            print(json.dumps(d.to_json(), sort_keys=True))
        else:
            print(render(d, sources) + "\n", file=sys.stderr)


def _fmt(args) -> int:
    status = EXIT_OK
    for name in args.files:
        path = Path(name)
        if not path.is_file():
            print(f"tfmc fmt: no such file: '{name}'", file=sys.stderr)
            status = EXIT_USER
            continue
        text = path.read_text(encoding="utf-8")
        formatted = format_module(parse(text, name))
        if args.stdout:
            sys.stdout.write(formatted)
        elif formatted != text:
            if args.check:
                print(f"{name}: would be reformatted")
                status = EXIT_USER
            else:
                tmp = path.with_name(path.name + ".tfmc-fmt")
                tmp.write_text(formatted, encoding="utf-8")
                tmp.replace(path)
                print(f"{name}: formatted")
    return status


def _graph(args) -> int:
    from ..compiler.graph import to_dot

    result = compile_model(args.file)
    graph = result.graph
    if args.dot:
        print(to_dot(graph, result.model.name))
        return EXIT_OK
    for node in result.model.order:
        data = graph.nodes[node]
        uses = sorted(graph.nodes[n].get("label", n) for n in graph.successors(node))
        print(f"{data.get('label', node)} ({data.get('kind')})"
              + (f" uses {', '.join(uses)}" if uses else ""))
    return EXIT_OK


def _derive(args) -> int:
    from ..compiler.derive_report import report

    result = compile_model(args.file)
    findings = [d for d in result.diagnostics if args.pedantic or not d.pedantic]
    print(report(result.model, findings, args.format, result.sources))
    return EXIT_OK


def _info(args) -> int:
    trained, folder = None, args.file
    if Path(args.file).is_dir():  # a run folder: its model, and how it was trained
        from .run import run_record

        model, trained = run_record(args.file)
    else:
        model = load_model(args.file)
    summary = model_summary(model)
    if trained is not None:
        summary["run"] = trained
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return EXIT_OK
    print(f"model {summary['model']} ({summary['file']})")
    print(f"  shape        {summary['shape']} (dim {summary['dim']})")
    for role in ("base", "target", "coupling"):
        print(f"  {role:<12} {_call_text(summary[role])}")
    if summary["interpolant"] is not None:
        print(f"  interpolant  {summary['interpolant']['name']} = "
              f"{summary['interpolant']['expr']}")
    for c in summary["constants"]:
        where = f" from {c['path']}" + (f"[{c['key']}]" if c.get("key") else "") \
            if "path" in c else ""
        print(f"  constant     {c['name']}: shape {c['shape']}{where}")
    for e in summary["energies"]:
        print(f"  energy       {e['name']}({e['arg']}) = {e['text']}")
    for f in summary["functions"]:
        print(f"  {'noise' if f['noise'] else 'function':<12} {f['name']}"
              f"({', '.join(f['params'])}) = {f['body']}")
    for n in summary["networks"]:
        print(f"  network      {n['name']} = {_call_text(n['constructor'])}")
    objective = summary["objective"]
    if objective is not None:
        for term in objective["terms"]:
            args = ", ".join(f"{k} = {v['name'] if isinstance(v, dict) and 'ref' in v else v}"
                             for k, v in term.get("args", {}).items())
            print(f"  objective    {term['network']} ~ {term.get('objective', term['target'])}"
                  + (f"({args})" if args else ""))
        if not model.flow:  # (a flow's objective has no time law or weight)
            print(f"  time law     {_call_text(objective['time_law'])}, "
                  f"weight {objective['weight']}")
        if "labels" in objective:
            print(f"  labels       {_call_text(objective['labels'])} (classifier-free guidance)")
    for s in summary["samplers"]:
        print(f"  sampler      {s['name']} = {_call_text(s['constructor'])}")
    train = ", ".join(f"{k} {_call_text(v) if isinstance(v, dict) else v}"
                      for k, v in summary["train"].items())
    print(f"  train        {train}")
    if trained is not None:
        sampling = trained["steps"] is None  # a model that trains nothing: its samplers ran
        print(f"run {folder}: {trained['backend']} backend, seed {trained['seed']}, "
              + ("samplers run (nothing trained)" if sampling else
                 f"step {trained['step']} of {trained['steps']}"))
        for entry in trained["layouts"]:
            how = (f"{entry['devices']} device{'s' * (entry['devices'] > 1)}"
                   + (f" in {entry['processes']} processes" if entry["processes"] > 1 else "")
                   + (f" ({entry['platform']})" if "platform" in entry else "")
                   + (f", {entry['batch_per_device']} points per device"
                      if entry["devices"] > 1 and "batch_per_device" in entry else ""))
            print(f"  on {how}" if sampling else f"  from step {entry['from_step']:<6} {how}")
    return EXIT_OK


def _call_text(ctor: dict) -> str:
    def show(v):
        if isinstance(v, dict):
            return v["name"]
        if isinstance(v, list):
            return "[" + ", ".join(map(str, v)) + "]" if len(v) > 1 else str(v[0])
        return repr(v) if isinstance(v, str) else str(v)
    return f"{ctor['name']}({', '.join(f'{k} = {show(v)}' for k, v in ctor['args'].items())})"


def model_summary(model: ir.Model) -> dict:
    """The JSON summary of ``tfmc info --json``: stable keys, plain values."""
    return {
        "model": model.name,
        "file": model.file,
        "shape": list(model.shape),
        "dim": model.dim,
        "base": model.base.constructor.to_json(),
        "target": model.target.constructor.to_json(),
        "coupling": model.coupling.to_json(),
        "interpolant": None if model.sampling else {
            "name": model.interpolant.name, "expr": str(model.interpolant.expr),
            "latent": model.interpolant.uses_latent},
        "constants": [{"name": c.name} | c.to_json() for c in model.constants
                      if "values" not in c.to_json()] +
                     [{"name": c.name, "shape": list(c.shape)} for c in model.constants
                      if c.path is None],
        "functions": [{"name": f.name, "params": list(f.params), "body": str(f.body),
                       "noise": f.is_noise} for f in model.functions],
        "energies": [{"name": e.name, "arg": e.arg, "text": e.text,
                      "expr": None if e.expr is None
                      else str(e.expr)} for e in model.energies],
        "networks": [{"name": n.name, "constructor": n.constructor.to_json()}
                     for n in model.networks],
        "objective": None if model.objective is None else {
            "terms": [{"network": t.network, "target": t.target}
                      | ({"args": dict(t.objective.to_json()["args"]),
                          "objective": t.objective.name} if t.objective else {})
                      for t in model.objective.terms],
            "time_law": model.objective.time_law.to_json(),
            "weight": str(model.objective.weight)}
        | ({"labels": model.objective.labels.to_json()} if model.objective.labels else {}),
        "samplers": [{"name": s.name, "constructor": s.constructor.to_json()}
                     for s in model.samplers],
        "train": {k: (v.to_json() if isinstance(v, ir.Constructor) else v)
                  for k, v in model.train.settings},
        "declarations": list(model.order),
    }


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
