"""``make docs``: the documentation site builds in strict mode (broken links, missing pages or
unresolvable API references fail), with the command-line reference generated from --help."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_site_builds_in_strict_mode(tmp_path):
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(site)], cwd=ROOT, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    pages = {p.relative_to(site).as_posix() for p in site.rglob("index.html")}
    for page in ("index.html", "data-and-units/index.html", "potentials-and-simulation/index.html",
                 "python-api/index.html", "reference/cli/index.html", "reference/api/index.html",
                 "architecture/index.html", "crystals-and-screening/index.html",
                 "generative-models/index.html", "property_models/index.html"):  # fmt: skip
        assert page in pages, page
    cli = (site / "reference" / "cli" / "index.html").read_text()
    assert "deepatoms data import" in cli and "--energy-unit" in cli
    api = (site / "reference" / "api" / "index.html").read_text()
    assert "structure_problem" in api and "import_structures" in api
    shutil.rmtree(site)
