"""Sphinx configuration of the tutorial site: the notebooks as committed, with their outputs, not re-run.

`make book` copies docs/ and notebooks/ into build/book/src and builds build/book/html from there
(Sphinx reads documents only under its source folder). Every page works offline: nothing is loaded from a CDN.
"""

import shutil
from pathlib import Path

import tomllib
from sphinx.util.osutil import relative_uri

project = "nfmix"
author = "the nfmix authors"
copyright = "nfmix authors"
extensions = ["myst_nb"]
exclude_patterns = ["**/.ipynb_checkpoints"]

# The notebooks are committed executed (outputs and figures included): show those, never run them here.
nb_execution_mode = "off"
nb_merge_streams = True
# The notebooks write math as $...$ and $$...$$ (with \tag{}), as Colab and Jupyter render it.
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
myst_update_mathjax = False  # its settings are MathJax 3's; the site uses MathJax 2 (below)
nb_ipywidgets_js = {}  # widget pages would load require.js and the widget manager from a CDN

# MathJax 2.7 from Debian's libjs-mathjax, copied into _static/mathjax by copy_mathjax() below. Sphinx refuses
# a query string in a local asset path, so the combined configuration is named in the in-line config instead
# of the usual "MathJax.js?config=TeX-AMS_CHTML".
MATHJAX = Path("/usr/share/javascript/mathjax")
mathjax_path = "mathjax/MathJax.js"
mathjax2_config = {
    "config": ["TeX-AMS_CHTML.js"],
    "messageStyle": "none",
    "CommonHTML": {"linebreaks": {"automatic": True}},
}
# The parts of MathJax that TeX-AMS_CHTML loads (about 2 MB of the package's 54 MB).
MATHJAX_PARTS = [
    "MathJax.js",
    "config/TeX-AMS_CHTML.js",
    "extensions",
    "jax/input/TeX",
    "jax/element",
    "jax/output/CommonHTML",
    "fonts/HTML-CSS/TeX/woff",
    "fonts/HTML-CSS/TeX/otf",
    "localization/en",
]

html_theme = "sphinx_book_theme"
html_title = "nfmix: clustering with mixtures of normalizing flows"
html_static_path = ["_static"]
html_css_files = ["nfmix.css"]  # outputs wrap; see the file
# Without a default, the theme logs a console error on a reader's first visit; figures are drawn on white.
html_context = {"default_mode": "light"}
# The project's one address is pyproject's; conf.py runs from docs/ or from its copy in build/book/src.
PYPROJECT = next(p / "pyproject.toml" for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
html_theme_options = {
    "repository_url": tomllib.loads(PYPROJECT.read_text())["project"]["urls"]["Repository"],
    "use_repository_button": True,
    "use_download_button": True,  # the .ipynb and the page's source, from the build itself
    "show_toc_level": 2,
    "navigation_with_keys": False,
}

# The notebooks' first cell has a Colab badge whose image lives on colab.research.google.com. Offline it would be
# a broken image, so the site shows a copy drawn here (_static/colab-badge.svg); the link still opens Colab.
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def local_colab_badge(app, doctree, docname):
    from docutils import nodes

    for image in doctree.findall(nodes.image):
        if image["uri"] == COLAB_BADGE:
            # Remote images are emitted as written, so a page-relative path is written as it is too.
            image["uri"] = relative_uri(app.builder.get_target_uri(docname), "_static/colab-badge.svg")


def copy_mathjax(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    if not (MATHJAX / "MathJax.js").is_file():
        raise RuntimeError(f"MathJax not found in {MATHJAX}: apt-get install libjs-mathjax")
    target = Path(app.outdir) / "_static" / "mathjax"
    for part in MATHJAX_PARTS:
        source = MATHJAX / part
        if source.is_dir():
            shutil.copytree(source, target / part, dirs_exist_ok=True)
        else:
            (target / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target / part)


def setup(app):
    app.connect("doctree-resolved", local_colab_badge)
    app.connect("build-finished", copy_mathjax)
