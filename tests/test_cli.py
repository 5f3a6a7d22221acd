"""The command-line interface: argument errors, demo and bench outputs."""

import json
import subprocess
import sys

import pytest

from skhepex.cli import build_parser, format_table, main


@pytest.mark.parametrize("argv, message", [
    (["demo", "--tile-shape", "8", "6"], "powers of two"),
    (["demo", "--n-samples", "0"], "at least 1"),
    (["demo", "--tolerance", "1.5"], "tolerance"),
    (["demo", "--repeats", "0"], "--repeats must be at least 1"),
    (["demo", "--model", "resnet"], "invalid choice"),
    (["bench", "--tasks", "nope"], "invalid choice"),
    (["bench", "--quick"], "--out"),                   # no default inside the repository
    ([], "required"),
])
def test_argument_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_out_must_be_a_folder(tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(SystemExit):
        main(["demo", "--out", str(f)])
    assert "not a folder" in capsys.readouterr().err


def test_bench_refuses_a_non_empty_out_without_force(tmp_path, capsys, monkeypatch):
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert "--force" in capsys.readouterr().err
    ran = []
    monkeypatch.setattr("skhepex.cli.commands.cmd_bench", lambda args, progress: ran.append(args) or 0)
    assert main(["bench", "--out", str(tmp_path), "--force", "--quiet"]) == 0
    assert ran and ran[0].force and ran[0].out == tmp_path
    assert main(["bench", "--out", str(tmp_path / "new"), "--quiet"]) == 0


@pytest.mark.filterwarnings("error::sklearn.exceptions.ConvergenceWarning")
def test_demo_end_to_end(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["demo", "--quick", "--n-samples", "16", "--repeats", "3", "--out",
                 str(tmp_path), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # --quiet: no progress lines, no warnings
    out = captured.out
    for variant in ("dense", "P", "Hunter", "PPTE"):
        assert variant in out
    from skhepex.cli.output import VARIANT_LEGEND

    assert VARIANT_LEGEND in out                        # what P, Hunter and PPTE are
    assert "validation accuracy" in out and "never used to select" in out
    assert "median of 3 timed runs after a warm-up" in out
    assert "val_score" in out and "test_score" in out
    data = json.loads((tmp_path / "demo.json").read_text())
    assert {s["variant"] for s in data["selected"]} == {"dense", "P", "Hunter", "PPTE"}
    for s in data["selected"]:
        he = s["he"]
        assert he["agreement"] == 1.0
        assert s["selected"]["n_ciphertexts"] <= s["selected"]["n_ciphertexts_dense"]
        assert he["repeats"] == 3 and len(he["seconds_per_sample_runs"]) == 3
        assert he["seconds_per_sample"] == sorted(he["seconds_per_sample_runs"])[1]
        assert he["server_seconds_per_batch"] > 0
    # the selected candidates are flagged among all the records, one per variant
    flagged = [r for r in data["records"] if r["selected"]]
    assert sorted(r["variant"] for r in flagged) == ["Hunter", "P", "PPTE", "dense"]
    for s in data["selected"]:
        rec = next(r for r in flagged if r["variant"] == s["variant"])
        assert rec["n_ciphertexts"] == s["selected"]["n_ciphertexts"]
        assert rec["val_score"] == s["selected"]["val_score"]
    head = data["headline"]
    by = {s["variant"]: s for s in data["selected"]}
    assert head["latency_vs_dense"] == pytest.approx(
        1 - by["PPTE"]["he"]["seconds_per_sample"] / by["dense"]["he"]["seconds_per_sample"])
    assert (tmp_path / "pareto.png").stat().st_size > 0


def test_headline_uses_medians_and_the_same_budget():
    from skhepex.cli.commands import _headline, _headline_text

    def result(variant, ct, median, within=True):
        return {"variant": variant, "selected": {"n_ciphertexts": ct, "within_tolerance": within},
                "he": {"seconds_per_sample": median, "packed_model_bytes": 10 * ct}}

    results = [result("dense", 100, 0.010), result("Hunter", 40, 0.005),
               result("PPTE", 20, 0.004)]
    head = _headline(results)
    assert head == pytest.approx({"ciphertexts_vs_dense": 0.8, "latency_vs_dense": 0.6,
                                  "memory_vs_dense": 0.8, "ciphertexts_vs_hunter": 0.5,
                                  "latency_vs_hunter": 0.2})
    text = _headline_text(head)
    assert text.startswith("PPTE vs dense: ciphertexts -80.0%, latency -60.0%")
    assert "vs Hunter: ciphertexts -50.0%, latency -20.0%" in text and "medians" in text
    results[1] = result("Hunter", 40, 0.005, within=False)   # not at the same budget
    assert "ciphertexts_vs_hunter" not in _headline(results)


def test_bench_without_he(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["bench", "--quick", "--no-he", "--tasks", "ae", "--out", str(tmp_path)]) == 0
    assert "PPTE" in capsys.readouterr().out
    data = json.loads((tmp_path / "results.json").read_text())
    assert {r["variant"] for r in data["records"]} == {"dense", "P", "Hunter", "PPTE"}
    rst = (tmp_path / "results.rst").read_text()
    assert ".. generated by" in rst
    assert f"skhepex bench --out {tmp_path} --tasks ae --quick --no-he --force" in rst
    assert (tmp_path / "pareto_ae.png").exists() and (tmp_path / "results.md").exists()


def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "skhepex", "--help"], capture_output=True,
                         text=True, check=True)
    assert "demo" in out.stdout and "bench" in out.stdout


HEAVY = ("numpy", "sklearn", "scipy", "tenseal", "matplotlib")


def _loaded_in_subprocess(code):
    """Run ``code`` in a fresh interpreter; return which HEAVY modules it imported."""
    code += f"\nimport sys\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_help_imports_no_heavy_module():
    # `skhepex --help` and argument errors must not pay for NumPy/sklearn/TenSEAL
    loaded = _loaded_in_subprocess(
        "from skhepex.cli import build_parser\n"
        "p = build_parser()\n"
        "for cmd in ('demo', 'bench'):\n"
        "    p.parse_args([cmd, '--out', 'x'])\n"
        "    p._subparsers._group_actions[0].choices[cmd].format_help()\n"
        "p.format_help()")
    assert loaded == []


def test_import_skhepex_is_lazy():
    assert "tenseal" not in _loaded_in_subprocess("import skhepex")
    assert "tenseal" not in _loaded_in_subprocess(
        "import skhepex, skhepex.experiments, skhepex.plotting, skhepex.cli\n"
        "from skhepex import MLPClassifier, HEPEx, TileLayout, ParetoDisplay")


def test_lazy_public_names():
    import skhepex

    for name in ("HEPredictor", "HECostReport", "he_cost_report", "ParetoDisplay"):
        assert name in skhepex.__all__ and name in dir(skhepex)
    assert "pruning" in dir(skhepex)
    for name in skhepex.__all__:
        assert getattr(skhepex, name) is not None
    with pytest.raises(AttributeError, match="no attribute"):
        skhepex.does_not_exist


def test_help_describes_every_option_variant_and_column():
    from skhepex.cli import COLUMN_HELP
    from skhepex.experiments import VARIANTS, load_task

    parser = build_parser()
    sub = parser._subparsers._group_actions[0]
    assert all(a.help for a in sub._choices_actions)
    for cmd, sp in sub.choices.items():
        assert sp.description, cmd
        for action in sp._actions:
            assert action.help, (cmd, action.dest)
        if cmd == "serve":
            continue  # serves a saved package: no variants or columns
        text = sp.format_help()
        for variant in VARIANTS:
            assert f"\n  {variant} " in text, (cmd, variant)
        for column in COLUMN_HELP:
            assert f"\n  {column} " in text, (cmd, column)
    bench = sub.choices["bench"].format_help()
    for name in ("ae", "dae", "mlp", "cnn"):
        assert load_task(name).description in bench


def test_format_table():
    rows = [{"a": 1, "b": "xy"}, {"a": 22, "b": ""}]
    assert format_table(rows, ["a", "b"]).splitlines()[0].split() == ["a", "b"]
    assert format_table(rows, ["a", "b"], markdown=True).startswith("| a ")
    assert build_parser().parse_args(["demo"]).model == "mlp"


def test_demo_offers_every_bench_task_and_honest_help():
    from skhepex.cli import BENCH_TASKS, DEFAULT_REPEATS
    from skhepex.cli.output import VARIANT_LEGEND
    from skhepex.experiments import VARIANTS

    parser = build_parser()
    for task in BENCH_TASKS:
        assert parser.parse_args(["demo", "--model", task]).model == task
    args = parser.parse_args(["demo"])
    assert args.repeats == DEFAULT_REPEATS >= 3
    demo = parser._subparsers._group_actions[0].choices["demo"].format_help()
    assert "seconds instead" not in demo and "validation" in demo and "median" in demo
    for variant in VARIANTS:
        assert f"{variant} = " in VARIANT_LEGEND


def test_bench_rst_is_valid_restructuredtext(tmp_path):
    docutils = pytest.importorskip("docutils.core")
    pytest.importorskip("matplotlib")
    main(["bench", "--quick", "--no-he", "--tasks", "ae", "--out", str(tmp_path), "--quiet"])
    src = (tmp_path / "results.rst").read_text()
    src = "\n".join(line for line in src.splitlines()
                    if not line.startswith((".. image::", "   :width:")))
    docutils.publish_doctree(src, settings_overrides={"report_level": 2, "halt_level": 2})
