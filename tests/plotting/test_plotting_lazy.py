"""Importing the displays must not import matplotlib (it is an optional extra)."""

import subprocess
import sys


def test_import_does_not_import_matplotlib():
    code = ("import sys\n"
            "import skhepex.plotting\n"
            "from skhepex.plotting import ParetoDisplay, TileMapDisplay, pareto_front\n"
            "from skhepex import ParetoDisplay as P\n"
            "assert P is ParetoDisplay\n"
            "bad = sorted(m for m in ('matplotlib', 'tenseal') if m in sys.modules)\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_names():
    import skhepex.plotting as plotting

    assert sorted(plotting.__all__) == ["ParetoDisplay", "TileMapDisplay", "pareto_front"]
    assert plotting.pareto_front.__module__ == "skhepex.plotting.pareto"
    assert plotting.ParetoDisplay.__module__ == "skhepex.plotting.pareto"
    assert plotting.TileMapDisplay.__module__ == "skhepex.plotting.tile_map"
