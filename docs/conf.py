"""Sphinx configuration of the skhepex documentation.

Build: ``sphinx-build -W -b html docs docs/_build/html`` (needs
``pip install ".[docs]"``: sphinx, numpydoc, matplotlib, sphinx-gallery). The
examples gallery runs every ``examples/plot_*.py`` script (about two minutes on
2 cores); ``-D plot_gallery=0`` builds it from the sources alone, without
running them. After an HTML build, every internal link (``href``/``src`` to a
page, a file or an anchor of the build) is checked: a broken one is a warning,
so ``-W`` fails the build.

The API reference follows the code: at configuration time every section module's
``__all__`` is read and an autosummary listing is written to
``docs/_api_sections.rst`` (included by ``api.rst``). A name that is
exported at the top level (``skhepex.__all__``) is documented as ``skhepex.<name>``,
any other as ``<section module>.<name>``. A name listed in ``__all__`` that does not
exist fails the build.
"""

import importlib
import os
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import matplotlib

matplotlib.use("Agg")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.abspath(os.path.join(HERE, "..")))

import skhepex  # noqa: E402

# -- project -----------------------------------------------------------------
project = "skhepex"
author = "skhepex developers"
copyright = "2023-2025, skhepex developers"
release = skhepex.__version__
version = ".".join(release.split(".")[:2])

# -- extensions --------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "matplotlib.sphinxext.plot_directive",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
# results.rst is a fragment included by benchmarks.rst, not a page of its own
exclude_patterns = ["_build", "_api_sections.rst", "benchmarks/results.rst", "Thumbs.db",
                    ".DS_Store"]
root_doc = "index"
default_role = "literal"

# -- autodoc / autosummary / numpydoc ------------------------------------------
# the API listing lives in an included file, which autosummary must scan itself
autosummary_generate = ["_api_sections.rst"]
autosummary_imported_members = True
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"          # numpydoc docstrings carry the types
numpydoc_show_class_members = False  # the class template lists members via autodoc
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False
# numpydoc_validation_checks is left empty: structural docstring errors still
# surface as Sphinx warnings (and fail -W); style checks (GL08, SA01, ...) do not.

# -- plot directive ------------------------------------------------------------
plot_include_source = True
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 90)]
plot_rcparams = {"figure.max_open_warning": 0}
plot_pre_code = (
    "import warnings\n"
    "import numpy as np\n"
    "import matplotlib.pyplot as plt\n"
    "from sklearn.exceptions import ConvergenceWarning\n"
    "warnings.filterwarnings('ignore', category=ConvergenceWarning)\n"
)

# -- examples gallery (sphinx-gallery) ----------------------------------------
# Every example runs when the docs are built: its printed output and its
# figures are shown under its code. The examples save their figures into
# skhepex_out/figures/ of the folder they run in (examples/ here), which git
# ignores.
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",          # run every example
    "ignore_pattern": r"__init__\.py|skhepex_out",
    "abort_on_example_error": True,        # a failing example fails the build
    "download_all_examples": False,
    "image_scrapers": ("matplotlib",),
    "remove_config_comments": True,
    "min_reported_time": 5,
    "write_computation_times": False,      # no sg_execution_times.rst page
}

# -- HTML ----------------------------------------------------------------------
html_theme = "alabaster"
html_static_path = []
html_title = f"skhepex {release}"
html_theme_options = {
    "description": "HE-PEx pruning for encrypted inference, scikit-learn style",
    "fixed_sidebar": True,
}

# -- API listing generated from __all__ ---------------------------------------
#: (title, module whose __all__ is listed, one-line description)
API_SECTIONS = [
    ("Estimators", "skhepex.estimators",
     "NumPy networks with scikit-learn's API; HE-compatible activations are "
     "``\"square\"`` and ``\"poly\"``."),
    ("Tiling", "skhepex.tiling",
     "The single source of truth for how weight matrices become tiles."),
    ("Pruning", "skhepex.pruning",
     "The HE-PEx meta-estimator, its pruning steps and the model-selection helpers."),
    ("Encrypted inference", "skhepex.he",
     "The CKKS predictor, the cost report, the compiler, client, server and parameter "
     "selection."),
    ("Plotting", "skhepex.plotting",
     "scikit-learn-style displays (needs ``pip install \"skhepex[plot]\"``)."),
    ("Network core", "skhepex.nn",
     "Layers, activations and the network object shared by the estimators."),
    ("Experiments", "skhepex.experiments",
     "The paper-style tasks, variants, sweeps and measurements behind "
     "``skhepex demo`` and ``skhepex bench``."),
]


def _documented_module(name, obj, module_name):
    """Public path under which ``name`` is documented (top level if exported there)."""
    top = getattr(skhepex, "__all__", [])
    if name in top and getattr(skhepex, name, None) is obj:
        return "skhepex"
    return module_name


def write_api_sections(path):
    lines = []
    seen = set()
    expected = set()
    for title, module_name, blurb in API_SECTIONS:
        module = importlib.import_module(module_name)
        names = list(getattr(module, "__all__", []))
        if not names:
            raise RuntimeError(f"{module_name} has no __all__; the API page lists __all__.")
        groups = {}
        for name in names:
            if not hasattr(module, name):
                raise RuntimeError(f"{module_name}.__all__ lists {name!r}, which does not exist.")
            obj = getattr(module, name)
            key = (id(obj), name)
            if key in seen:        # documented in an earlier section already
                continue
            seen.add(key)
            groups.setdefault(_documented_module(name, obj, module_name), []).append(name)
        # a module target for :mod: references and the Python Module Index
        lines += [title, "-" * len(title), "", f".. py:module:: {module_name}",
                  f"   :synopsis: {title}", "", blurb, ""]
        for doc_module, members in groups.items():
            expected.update(f"{doc_module}.{m}.rst" for m in members)
            lines += [f".. currentmodule:: {doc_module}", "",
                      ".. autosummary::", "   :toctree: generated/", "   :nosignatures:", ""]
            lines += [f"   {m}" for m in members] + [""]
    lines += [".. currentmodule:: skhepex", ""]
    text = "\n".join(lines)
    old = open(path, encoding="utf-8").read() if os.path.exists(path) else None
    if old != text:              # keep the mtime (and Sphinx's cache) when unchanged
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    # drop stubs of names no longer listed (renamed, moved to the top level, removed):
    # they would be orphan pages and duplicate cross-reference targets
    stub_dir = os.path.join(os.path.dirname(path), "generated")
    if os.path.isdir(stub_dir):
        for fname in os.listdir(stub_dir):
            if fname.endswith(".rst") and fname not in expected:
                os.remove(os.path.join(stub_dir, fname))


write_api_sections(os.path.join(HERE, "_api_sections.rst"))


def _skip_member(app, what, name, obj, skip, options):
    """Skip scikit-learn's generated metadata-routing setters (``set_*_request``)."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


class _LinkCollector(HTMLParser):
    """The ``id``/``name`` anchors and the ``href``/``src`` links of one HTML page."""

    def __init__(self):
        super().__init__()
        self.anchors, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key):
                self.anchors.add(attrs[key])
        for key in ("href", "src"):
            if attrs.get(key) and not (tag == "link" and key == "href"
                                       and attrs.get("rel") in ("canonical",)):
                self.links.append(attrs[key])


def broken_internal_links(outdir):
    """Internal links of an HTML build whose file or anchor does not exist.

    Parameters
    ----------
    outdir : path-like
        The HTML output folder.

    Returns
    -------
    broken : list of str
        ``"page.html: link"`` for every broken internal link.
    """
    outdir = Path(outdir)
    pages = {}
    for page in outdir.rglob("*.html"):
        parser = _LinkCollector()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        pages[page.resolve()] = parser
    broken = []
    for page, parser in pages.items():
        for link in parser.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "data:")):
                continue                                      # external
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(outdir.resolve())}: {link}")
            elif parts.fragment and target.suffix == ".html" and target in pages \
                    and unquote(parts.fragment) not in pages[target].anchors:
                broken.append(f"{page.relative_to(outdir.resolve())}: {link} (no such anchor)")
    return broken


def _check_internal_links(app, exception):
    """After an HTML build, warn about every broken internal link (``-W`` fails)."""
    if exception is not None or app.builder.format != "html":
        return
    from sphinx.util import logging

    log = logging.getLogger(__name__)
    for item in broken_internal_links(app.outdir):
        log.warning("broken internal link in %s", item)


def setup(app):
    app.connect("autodoc-skip-member", _skip_member)
    app.connect("build-finished", _check_internal_links)
