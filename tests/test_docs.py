"""The docs that the source cites exist: docs/paper.md's sections and every docs/ path."""

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
SOURCES = sorted((ROOT / "src").rglob("*.py"))
PAPER = ROOT / "docs" / "paper.md"

# "docs/paper.md section 2", "docs/paper.md, sections 1 and 3", "Paper.md section 2", across a
# line break too; the numbers may be listed as "1, 2 and 3" or "1-3".
SECTION_CITATION = re.compile(
    r"paper\.md`?,?\s+sections?\s+(\d+(?:\s*(?:,|and|-|–)\s*\d+)*)", re.IGNORECASE
)
DOC_PATH = re.compile(r"(?<![\w/.-])docs/[\w/.-]*?\.(?:md|py)\b")
HEADING = re.compile(r"^## (\d+)\.", re.MULTILINE)


def cited_numbers(listing: str) -> list[int]:
    """``"1 and 3"`` -> [1, 3]; ``"1-3"`` -> [1, 2, 3]."""
    numbers: list[int] = []
    for part in re.split(r"\s*(?:,|and)\s*", listing):
        ends = [int(n) for n in re.split(r"\s*[-–]\s*", part)]
        numbers += list(range(ends[0], ends[-1] + 1))
    return numbers


def citations(pattern: re.Pattern[str], paths: list[Path]) -> list[tuple[str, re.Match[str]]]:
    """Every match of ``pattern`` as ``(path:line, match)``."""
    found = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        for match in pattern.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{path.relative_to(ROOT)}:{line}", match))
    return found


def paper_sections() -> set[int]:
    return {int(n) for n in HEADING.findall(PAPER.read_text(encoding="utf-8"))}


def test_cited_numbers_parses_lists_and_ranges():
    assert cited_numbers("4") == [4]
    assert cited_numbers("1 and 3") == [1, 3]
    assert cited_numbers("1, 2 and 5") == [1, 2, 5]
    assert cited_numbers("2-4") == [2, 3, 4]


def test_paper_sections_are_numbered_in_order():
    numbers = [int(n) for n in HEADING.findall(PAPER.read_text(encoding="utf-8"))]
    assert numbers == list(range(1, len(numbers) + 1))


def test_every_paper_section_cited_in_src_exists():
    found = citations(SECTION_CITATION, SOURCES)
    assert len(found) >= 10, "the citation pattern no longer finds the source's citations"
    sections = paper_sections()
    missing = [f"{where}: section {number}" for where, match in found
               for number in cited_numbers(match.group(1)) if number not in sections]
    assert missing == [], f"docs/paper.md has sections {sorted(sections)}"


def test_every_paper_section_cited_in_the_docs_exists():
    pages = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
    sections = paper_sections()
    missing = [f"{where}: section {number}" for where, match in citations(SECTION_CITATION, pages)
               for number in cited_numbers(match.group(1)) if number not in sections]
    assert missing == [], f"docs/paper.md has sections {sorted(sections)}"


def test_every_docs_path_cited_in_src_exists():
    found = citations(DOC_PATH, SOURCES)
    cited = {match.group(0) for _, match in found}
    assert {"docs/paper.md", "docs/performance.md"} <= cited
    missing = [f"{where}: {match.group(0)}" for where, match in found
               if not (ROOT / match.group(0)).is_file()]
    assert missing == []


def test_the_thread_claim_is_in_docs_performance():
    text = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    assert "2 threads ran 1.3-11x slower" in text


def test_the_missing_cells_guide_runs_as_written(tmp_path):
    """docs/missing.md's example, in a fresh interpreter: the missing cells' gates are 0."""
    import subprocess
    import sys

    text = (ROOT / "docs" / "missing.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1
    result = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", blocks[0]],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    first_row = result.stdout.splitlines()[0]
    assert first_row.startswith("[[0.   0.   0. "), result.stdout
