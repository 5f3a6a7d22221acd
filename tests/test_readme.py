"""README's "Using it" snippet runs without warnings, and Getting started shows the same code."""

import re
import textwrap
import warnings
from pathlib import Path

import pytest
from sklearn.exceptions import ConvergenceWarning

ROOT = Path(__file__).resolve().parents[1]


def readme_snippet():
    """The ```python block of README.md's "## Using it" section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Using it\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert section, "README.md has no '## Using it' section"
    blocks = re.findall(r"^```python\n(.*?)^```", section.group(1), re.S | re.M)
    assert len(blocks) == 1, f"'## Using it' must hold one ```python block, found {len(blocks)}"
    return blocks[0]


def rst_python_blocks(path):
    """The bodies of the ``.. code-block:: python`` directives of an RST file, dedented."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    for i, line in enumerate(lines):
        if not re.match(r"^\.\. code-block:: python\s*$", line):
            continue
        j = i + 1
        while j < len(lines) and (lines[j].strip().startswith(":") or not lines[j].strip()):
            j += 1                                # options and the blank line
        body = []
        while j < len(lines) and (not lines[j].strip() or lines[j].startswith(" ")):
            body.append(lines[j])
            j += 1
        blocks.append(textwrap.dedent("\n".join(body)).strip("\n") + "\n")
    return blocks


def test_getting_started_shows_the_readme_snippet():
    blocks = rst_python_blocks(ROOT / "docs" / "getting_started.rst")
    assert blocks == [readme_snippet()], (
        "docs/getting_started.rst must show exactly one Python snippet, identical to "
        "README.md's 'Using it' block")


def test_readme_snippet_runs_without_convergence_warnings(tmp_path, monkeypatch, capsys):
    pytest.importorskip("tenseal")
    monkeypatch.chdir(tmp_path)                   # memory="cache_dir" is relative
    namespace = {"__name__": "__readme__"}
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        exec(compile(readme_snippet(), "README.md", "exec"), namespace)
    plain = namespace["search"].best_estimator_.predict(namespace["X_test"][:32])
    assert (namespace["y_pred"] == plain).all()      # encrypted == plaintext
    assert "HE cost report" in capsys.readouterr().out
