"""The documentation's links resolve, it reads as reference, and its figures live in one dated table."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FIGURES = ROOT / "docs" / "figures.md"

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def _prose(text: str) -> str:
    """The text outside fenced code blocks."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lowercase, punctuation dropped except '-' and '_', spaces to '-'."""
    kept = "".join(c for c in heading.lower() if c.isalnum() or c in "-_ ")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file, repeated headings numbered as GitHub numbers them."""
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(_prose(path.read_text())):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def relative_links(path: Path) -> list[str]:
    """Links to files of the repository (not URLs), outside code."""
    text = INLINE_CODE.sub("", _prose(path.read_text()))
    return [t for t in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def test_slug_follows_githubs_rule():
    assert slug("Compiled kernels: `yoso build-kernels`, `yoso env`, and backends") == (
        "compiled-kernels-yoso-build-kernels-yoso-env-and-backends"
    )
    assert slug("QA: multi-fact retrieval (`--dataset builtin:facts`, long range)") == (
        "qa-multi-fact-retrieval---dataset-builtinfacts-long-range"
    )
    assert slug("fwd_time 4,096 → 16,384") == "fwd_time-4096--16384"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files_and_headings(doc):
    broken = []
    for target in relative_links(doc):
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        shown = dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest
        if not dest.exists():
            broken.append(f"{target}: no file {shown}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading with anchor #{anchor} in {shown}")
    assert not broken, f"{doc.relative_to(ROOT)} has broken links:\n" + "\n".join(broken)


# Words of a lab notebook, not of a reference. "round" alone stays allowed: benchmark rounds
# (`--rounds`, "interleaved rounds") are a real term of the tools.
NARRATION = re.compile(
    r"\b(?:this|previous|last)\s+(?:round|session)\b"
    r"|\bissue\s*#?\s*\d+"
    r"|\bcommit\s+[0-9a-f]{7,40}\b",
    re.IGNORECASE,
)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_do_not_narrate_their_history(doc):
    hits = [
        f"line {text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r}"
        for text in [doc.read_text()]
        for m in NARRATION.finditer(text)
    ]
    assert not hits, f"{doc.relative_to(ROOT)} reads as a lab notebook:\n" + "\n".join(hits)


def _figure_rows() -> dict[str, list[str]]:
    section = FIGURES.read_text().split("## The table", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) == 5 and cells[0] not in ("id", "---"):
            rows[cells[0]] = cells
    return rows


def test_every_figure_has_a_date_a_command_and_a_machine():
    rows = _figure_rows()
    assert len(rows) >= 10
    machines = set(re.findall(r"^\| \*\*([^*]+)\*\* \|", FIGURES.read_text(), re.MULTILINE))
    for ident, (_, date, figure, command, machine) in rows.items():
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", date), f"row {ident}: date {date!r} is not YYYY-MM-DD"
        assert figure and command, f"row {ident}: figure or command empty (say 'command not recorded')"
        assert machine in machines, f"row {ident}: machine {machine!r} is not one of {sorted(machines)}"


def test_rows_cited_in_the_docs_exist():
    rows = set(_figure_rows())
    ref = re.compile(r"\b[A-Z]\d{1,2}\b")
    cited = re.compile(r"\brows?\s+([A-Z]\d{1,2}(?:\s*(?:[–-]|,|and)\s*[A-Z]\d{1,2})*)")
    missing = []
    for doc in DOCS:
        for group in cited.findall(doc.read_text()):
            for ident in ref.findall(group):
                if ident not in rows:
                    missing.append(f"{doc.relative_to(ROOT)}: row {ident}")
    assert not missing, "cited rows missing from docs/figures.md:\n" + "\n".join(missing)
