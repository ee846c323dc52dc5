"""The documentation is self-contained: code cites documents that exist, sections that exist,
and never the design files outside the repository; links between documents resolve."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    p for p in (ROOT / "src" / "deepatoms").rglob("*") if p.suffix in (".py", ".yaml", ".cfg")
]
DOCS = sorted((ROOT / "docs").rglob("*.md"))
#: Pages the site build generates (docs_hooks/), linked to but not in the repository.
GENERATED = {"reference/cli.md"}


def _sections(doc: Path) -> set[str]:
    """Numbers of the headings "## N." / "### N." of a method document."""
    return set(re.findall(r"^#{2,3} (\d+)\.", doc.read_text(encoding="utf-8"), flags=re.M))


def test_no_citation_of_files_outside_the_repository():
    bad = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in SOURCES
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"specs/[a-z-]+\.md|DESIGN\.md", line)
    ]
    assert not bad, "cite papers or docs/ instead of:\n" + "\n".join(bad)


def test_cited_documents_and_sections_exist():
    missing = []
    for p in SOURCES:
        text = p.read_text(encoding="utf-8")
        for m in re.finditer(r"docs/([a-z_-]+\.md)((?:,? ?§\s*\d+(?:\s*[–-]\s*§?\d+)?)*)", text):
            doc = ROOT / "docs" / m.group(1)
            if not doc.is_file():
                missing.append(f"{p.relative_to(ROOT)}: {m.group(0)} (no such document)")
                continue
            have = _sections(doc)
            for a, b in re.findall(r"§\s*(\d+)(?:\s*[–-]\s*§?(\d+))?", m.group(2)):
                wanted = range(int(a), int(b or a) + 1)
                missing += [f"{p.relative_to(ROOT)}: {m.group(0)} (no §{n} in {doc.name})"
                            for n in wanted if str(n) not in have]  # fmt: skip
    assert not missing, "\n".join(missing)


def test_links_between_documents_resolve():
    broken = []
    for doc in [*DOCS, ROOT / "README.md"]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://")) or target in GENERATED:
                continue
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)} → {target}")
    assert not broken, "\n".join(broken)


def test_every_family_document_says_what_its_section_numbers_are():
    for name in ("property_models", "position_free_crystals", "vimpnn", "gschnet", "grammar_vae",
                 "density_vae"):  # fmt: skip
        doc = ROOT / "docs" / f"{name}.md"
        assert len(_sections(doc)) >= 6, doc
        assert "Decisions where the paper" in doc.read_text(encoding="utf-8"), doc
