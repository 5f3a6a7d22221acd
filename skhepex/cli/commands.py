"""The ``skhepex demo`` and ``skhepex bench`` commands (imported when a command runs)."""

import json
import tempfile
import time

from ..experiments import (VARIANTS, json_record, load_task, measure_encrypted_many,
                           select_within, sweep)
from . import (BENCH_TASKS, DEFAULT_N_SAMPLES, DEFAULT_REPEATS, DEFAULT_TILE_SHAPE,
               DEFAULT_TOLERANCE)
from .output import DEMO_COLUMNS, NOT_WITHIN, VARIANT_LEGEND, format_table, rst_table

__all__ = ["cmd_bench", "cmd_demo", "run_task"]


def _setting(rec):
    """``"s=0.9 t=0.85"``: the non-zero sparsities of a candidate (``"-"`` for dense)."""
    parts = [f"{name}={rec[key]:g}" for key, name in (("sparsity", "s"), ("tile_sparsity", "t"))
             if rec.get(key)]
    return " ".join(parts) or "-"


def _row(variant, rec, he):
    row = {
        "variant": variant,
        "setting": _setting(rec),
        "weight_ct": rec["n_ciphertexts"],
        "ct_reduction": f"{100 * rec['ciphertext_reduction']:.1f}%",
        "val_score": f"{rec['val_score']:.4f}",
        "test_score": f"{rec['score']:.4f}",
        "degradation": f"{100 * rec['degradation']:.2f}%"
                       + ("" if rec.get("within_tolerance", True) else " *"),
    }
    if he is not None:
        row["he_ms_per_sample"] = (f"{1e3 * he['seconds_per_sample']:.2f} "
                                   f"±{100 * he['spread']:.0f}%")
        row["packed_MB"] = f"{he['packed_model_bytes'] / 2 ** 20:.1f}"
        row["he_agreement"] = f"{100 * he['agreement']:.1f}%"
    return row


def run_task(task_name, tile_shape, *, quick, n_samples, tolerance, progress, memory,
             encrypted=True, repeats=DEFAULT_REPEATS):
    """Sweep, select within tolerance and measure encrypted inference for one task.

    Parameters
    ----------
    task_name : str
        Name of the task (see :func:`skhepex.experiments.load_task`).
    tile_shape : tuple of int (t1, t2)
        Tile shape of every pruning step and of the encrypted inference.
    quick : bool
        Small sparsity grids.
    n_samples : int
        Held-out samples run encrypted per variant.
    tolerance : float
        Allowed relative degradation of the validation score.
    progress : callable
        Called with one message per stage (e.g. a :class:`skhepex.cli.Progress`).
    memory : str or joblib.Memory
        Cache of the fitted steps (the dense network is trained once).
    encrypted : bool, default=True
        Run the encrypted inference; ``False`` skips it (no TenSEAL needed).
    repeats : int, default=5
        Timed encrypted runs per variant after a warm-up, interleaved across
        the variants (see :func:`skhepex.experiments.measure_encrypted_many`).

    Returns
    -------
    task : skhepex.experiments.Task
        The task.
    records : list of dict
        Every fitted candidate (see :func:`skhepex.experiments.sweep`), with
        ``"selected"`` (bool) telling whether it is the selected model of
        its variant.
    results : list of dict
        One per variant of :data:`skhepex.experiments.VARIANTS`, with keys
        ``"variant"``, ``"selected"`` (the JSON record of the selected
        model), ``"he"`` (the measurement of
        :func:`skhepex.experiments.measure_encrypted_many`, or ``None``) and
        ``"row"`` (the table row, keys of :data:`skhepex.cli.COLUMN_HELP`).
    """
    task = load_task(task_name)
    progress(f"task {task_name}: {task.description}; tile shape {tile_shape[0]}x{tile_shape[1]}; "
             f"candidates are fitted on the training split, selected on the validation "
             f"split and reported on the test split")
    records = sweep(task, tile_shape, memory=memory, progress=progress, quick=quick)
    selected = select_within(records, tolerance)
    chosen = {(r["variant"], r["sparsity"], r["tile_sparsity"]) for r in selected.values()}
    for rec in records:
        rec["selected"] = (rec["variant"], rec["sparsity"], rec["tile_sparsity"]) in chosen
    for variant in VARIANTS:
        rec = selected[variant]
        progress(f"selected {variant}: {_setting(rec)}, {rec['n_ciphertexts']} ct, "
                 f"validation {task.metric} {rec['val_score']:.4f}, test {rec['score']:.4f}")
    X_he = task.X_test[:n_samples]
    measured = {}
    if encrypted:
        progress(f"encrypted inference of the {len(VARIANTS)} selected models on {len(X_he)} "
                 f"test samples: a warm-up, then {repeats} timed runs each, interleaved")
        measured = measure_encrypted_many({v: selected[v]["model"] for v in VARIANTS}, X_he,
                                          repeats=repeats, progress=progress)
        for variant in VARIANTS:
            he = measured[variant]
            progress(f"  {variant:<6} {1e3 * he['seconds_per_sample']:.2f} ms/sample (median; "
                     f"runs {1e3 * he['seconds_per_sample_min']:.2f}-"
                     f"{1e3 * he['seconds_per_sample_max']:.2f})")
    results = [{"variant": v, "selected": json_record(selected[v]), "he": measured.get(v),
                "row": _row(v, selected[v], measured.get(v))} for v in VARIANTS]
    return task, records, results


def _json_records(records):
    return [json_record(r) for r in records]


def _pareto_png(records, task, metric, tolerance, path):
    from ..plotting import ParetoDisplay

    disp = ParetoDisplay.from_json(_json_records(records), task=task, score_key="val_score",
                                   score_name=f"validation {metric}", tolerance=tolerance)
    disp.ax_.set_title(f"{task}: every candidate on the validation split\n"
                       f"(stars: selected, the fewest ciphertexts above the budget)",
                       fontsize=9)
    disp.figure_.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(disp.figure_)


def _reduction(new, old):
    return 1 - new / old if old else None


def _headline(results):
    """Reductions of PPTE vs dense and vs Hunter (ciphertexts; median latency; memory)."""
    by = {r["variant"]: r for r in results}
    if "PPTE" not in by or "dense" not in by:
        return {}
    ppte = by["PPTE"]
    out = {}
    for ref_name in ("dense", "Hunter"):
        ref = by.get(ref_name)
        if ref is None:
            continue
        if ref_name == "Hunter" and not (ref["selected"].get("within_tolerance", True)
                                         and ppte["selected"].get("within_tolerance", True)):
            continue  # only a comparison at the same degradation budget is meaningful
        key = ref_name.lower()
        out[f"ciphertexts_vs_{key}"] = _reduction(ppte["selected"]["n_ciphertexts"],
                                                  ref["selected"]["n_ciphertexts"])
        if ppte["he"] and ref["he"]:
            out[f"latency_vs_{key}"] = _reduction(ppte["he"]["seconds_per_sample"],
                                                  ref["he"]["seconds_per_sample"])
            if ref_name == "dense":
                out["memory_vs_dense"] = _reduction(ppte["he"]["packed_model_bytes"],
                                                    ref["he"]["packed_model_bytes"])
    return {k: v for k, v in out.items() if v is not None}


def _headline_text(head):
    """``"PPTE vs dense: ciphertexts -90.0%, ...; vs Hunter: ..."`` (reductions as minus)."""
    parts = []
    for ref in ("dense", "hunter"):
        items = [f"{k.split('_vs_')[0]} {0.0 - 100 * v:+.1f}%" for k, v in head.items()
                 if k.endswith(f"_vs_{ref}")]
        if items:
            parts.append(f"vs {'Hunter' if ref == 'hunter' else ref}: " + ", ".join(items))
    return ("PPTE " + "; ".join(parts) + (" (latency: medians)"
                                         if any(k.startswith("latency") for k in head) else "")
            if parts else "")


def _description(task, args, dense_val, encrypted=True):
    """The lines above a table: selection rule, splits, variants, latency protocol."""
    budget = dense_val - args.tolerance * abs(dense_val)
    lines = [f"selection: per variant, the fewest weight ciphertexts whose validation "
             f"{task.metric} is within {100 * args.tolerance:g}% of dense's "
             f"({dense_val:.4f}, so >= {budget:.4f}); test scores are reported, never "
             f"used to select",
             VARIANT_LEGEND]
    if encrypted:
        lines.append(f"latency: {args.n_samples} encrypted test samples end to end (encrypt, "
                     f"evaluate, decrypt), median of {args.repeats} timed runs after a "
                     f"warm-up, ± half their range")
    return lines


#: Parameters and Returns of a command function, appended by :func:`_command_doc`.
_COMMAND_SECTIONS = """Parameters
----------
args : argparse.Namespace
    Parsed and validated arguments of the ``{name}`` command.
progress : callable
    Called with one message per stage.

Returns
-------
status : int
    Exit status, 0.
"""


def _command_doc(name):
    """Decorator appending :data:`_COMMAND_SECTIONS` for command ``name`` to a docstring."""
    def decorate(func):
        from inspect import cleandoc

        if func.__doc__:  # None under python -OO
            func.__doc__ = f"{cleandoc(func.__doc__)}\n\n{_COMMAND_SECTIONS.format(name=name)}"
        return func

    return decorate


def _dense_val(results):
    return next(r["selected"]["val_score"] for r in results if r["variant"] == "dense")


def _payload(task, results, head):
    """The JSON of one task's selection: metric, headline, selected models."""
    return {"description": task.description, "metric": task.metric, "headline": head,
            "selected": [{k: v for k, v in r.items() if k != "row"} for r in results]}


@_command_doc("demo")
def cmd_demo(args, progress):
    """Run ``skhepex demo``: one task, four variants, real encrypted inference."""
    with tempfile.TemporaryDirectory() as cache:
        task, records, results = run_task(
            args.model, tuple(args.tile_shape), quick=args.quick, n_samples=args.n_samples,
            tolerance=args.tolerance, progress=progress, memory=cache, repeats=args.repeats)
    rows = [r["row"] for r in results]
    print(f"HE-PEx demo: {task.description} on the digits data, tile "
          f"{args.tile_shape[0]}x{args.tile_shape[1]}")
    print("\n".join(_description(task, args, _dense_val(results))))
    print(format_table(rows, DEMO_COLUMNS))
    if any(r["degradation"].endswith("*") for r in rows):
        print(NOT_WITHIN)
    head = _headline(results)
    if head:
        print(_headline_text(head))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        payload = {"task": task.name, "tile_shape": list(args.tile_shape),
                   "tolerance": args.tolerance, "repeats": args.repeats,
                   **_payload(task, results, head), "records": _json_records(records)}
        (args.out / "demo.json").write_text(json.dumps(payload, indent=2, default=float))
        try:
            _pareto_png(records, task.name, task.metric, args.tolerance,
                        args.out / "pareto.png")
        except ImportError as exc:
            progress(f"no Pareto plot: {exc}")
        progress(f"wrote {args.out / 'demo.json'} and {args.out / 'pareto.png'}")
    return 0


def _bench_command(args):
    """The ``skhepex bench`` command line that reproduces ``args`` (non-defaults only)."""
    parts = ["skhepex", "bench", "--out", str(args.out)]
    if tuple(args.tasks) != BENCH_TASKS:
        parts += ["--tasks", *args.tasks]
    if args.quick:
        parts.append("--quick")
    if args.no_he:
        parts.append("--no-he")
    if tuple(args.tile_shape) != DEFAULT_TILE_SHAPE:
        parts += ["--tile-shape", *map(str, args.tile_shape)]
    if args.n_samples != DEFAULT_N_SAMPLES["bench"]:
        parts += ["--n-samples", str(args.n_samples)]
    if args.tolerance != DEFAULT_TOLERANCE:
        parts += ["--tolerance", str(args.tolerance)]
    if args.repeats != DEFAULT_REPEATS:
        parts += ["--repeats", str(args.repeats)]
    return " ".join(parts)


def _rst_task(task, rows, cols, lines, note, head_txt, png):
    """The section of one task in ``results.rst``."""
    rst = [task.description, "-" * len(task.description), ""]
    rst += [f"| {line}" for line in lines] + ["", rst_table(rows, cols), ""]
    rst += [note.replace("*", r"\*", 1), ""] if note else []
    rst += [f"{head_txt}.", ""] if head_txt else []
    if png:
        rst += [f".. image:: /benchmarks/{png}", "   :width: 70%", ""]
    return "\n".join(rst)


@_command_doc("bench")
def cmd_bench(args, progress):
    """Run ``skhepex bench``: the paper's evaluation structure on digits.

    Writes ``results.json``, ``results.md``, ``results.rst`` and
    ``pareto_<task>.png`` into ``args.out``.
    """
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    all_records, summary, tables_md, tables_rst = [], [], [], []
    with tempfile.TemporaryDirectory() as cache:
        for name in args.tasks:
            task, records, results = run_task(
                name, tuple(args.tile_shape), quick=args.quick, n_samples=args.n_samples,
                tolerance=args.tolerance, progress=progress, memory=cache,
                encrypted=not args.no_he, repeats=args.repeats)
            all_records += _json_records(records)
            head = _headline(results)
            summary.append({"task": name, **_payload(task, results, head)})
            rows = [r["row"] for r in results]
            cols = [c for c in DEMO_COLUMNS if c in rows[0]]
            lines = _description(task, args, _dense_val(results), encrypted=not args.no_he)
            png = f"pareto_{name}.png"
            try:
                _pareto_png(records, name, task.metric, args.tolerance, out / png)
            except ImportError as exc:  # matplotlib missing: tables only
                progress(f"no plot: {exc}")
                png = None
            head_txt = _headline_text(head)
            note = NOT_WITHIN if any(r["degradation"].endswith("*") for r in rows) else ""
            tables_rst.append(_rst_task(task, rows, cols, lines, note, head_txt, png))
            md_lines = "".join(f"{line}  \n" for line in lines)
            tables_md.append(f"### {task.description}\n\n{md_lines}\n"
                             f"{format_table(rows, cols, True)}\n"
                             + (f"\n{note}\n" if note else "")
                             + (f"\n{head_txt}\n" if head_txt else ""))
            print("\n".join(["", task.description, *lines, format_table(rows, cols)]
                            + ([note] if note else []) + ([head_txt] if head_txt else [])))
    meta = {"tile_shape": list(args.tile_shape), "tolerance": args.tolerance,
            "n_samples": args.n_samples, "repeats": args.repeats, "quick": args.quick,
            "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    (out / "results.json").write_text(json.dumps(
        {**meta, "records": all_records, "summary": summary}, indent=2, default=float))
    (out / "results.md").write_text(
        f"# skhepex bench ({meta['generated']})\n\n" + "\n".join(tables_md))
    cmd = _bench_command(args)
    he_text = ("no encrypted inference" if args.no_he else
               f"{args.n_samples} encrypted test samples per variant (TenSEAL CKKS)")
    header = [".. generated by `skhepex bench`; do not edit, regenerate with:",
              f"   {cmd} --force", "",
              f"Generated {meta['generated']} by ``{cmd}``: digits data, tile shape "
              f"{args.tile_shape[0]}x{args.tile_shape[1]}, selection within "
              f"{100 * args.tolerance:.1f}% degradation on a validation split, "
              f"{he_text}.", ""]
    (out / "results.rst").write_text("\n".join(header) + "\n" + "\n".join(tables_rst))
    progress(f"wrote {out / 'results.json'}, results.md, results.rst and plots")
    return 0
