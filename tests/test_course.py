"""dlcourse.course: the course map, the claims, the glossary, and the docs written from them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dlcourse import course

ROOT = Path(__file__).resolve().parent.parent
CURRICULUM = ROOT.parent / "shared" / "CURRICULUM.md"
EXPECTED_IDS = [
    *(f"C0.{i}" for i in range(1, 3)),
    *(f"C1.{i}" for i in range(1, 5)),
    *(f"C2.{i}" for i in range(1, 9)),
    *(f"C3.{i}" for i in range(1, 6)),
    *(f"C4.{i}" for i in range(1, 7)),
    *(f"C5.{i}" for i in range(1, 7)),
]


def test_claim_ids_are_the_curriculums() -> None:
    assert [c.id for c in course.CLAIMS] == EXPECTED_IDS


@pytest.mark.skipif(
    not CURRICULUM.exists(), reason="../shared/CURRICULUM.md is not beside the repo"
)
def test_claims_and_korean_terms_match_curriculum_md() -> None:
    text = CURRICULUM.read_text(encoding="utf-8")
    assert re.findall(r"^- (C\d\.\d) ", text, flags=re.MULTILINE) == EXPECTED_IDS
    for term in ("심층 신경망", "지역 극소", "플라토", "가중치 공유", "망각 게이트", "갱신 게이트"):
        assert term in text
        assert any(t.korean.startswith(term) for t in course.GLOSSARY), term


def test_every_claim_is_in_exactly_one_notebook() -> None:
    owners = [cid for nb in course.NOTEBOOKS for cid in nb.claims]
    assert sorted(owners) == sorted(EXPECTED_IDS)
    assert len(owners) == len(set(owners))


def test_notebooks_are_numbered_in_order() -> None:
    numbers = [nb.number for nb in course.NOTEBOOKS]
    assert numbers == list(range(len(course.NOTEBOOKS)))
    for nb in course.NOTEBOOKS:
        assert re.fullmatch(rf"{nb.number:02d}_[a-z0-9_]+\.ipynb", nb.filename)
        assert nb.path == f"notebooks/{nb.filename}"


def test_modules_of_written_notebooks_exist() -> None:
    """A written notebook names only modules that exist; planned ones name what they will add."""
    written = 0
    for nb in course.NOTEBOOKS:
        if not (ROOT / nb.path).exists():
            continue
        written += 1
        for module in nb.modules:
            assert (ROOT / "dlcourse" / f"{module}.py").exists() or (
                ROOT / "dlcourse" / module / "__init__.py"
            ).exists(), f"{nb.filename} names dlcourse.{module}, which does not exist"
    assert written >= 1


def test_glossary_terms_point_at_real_notebooks() -> None:
    numbers = {nb.number for nb in course.NOTEBOOKS}
    koreans = [t.korean for t in course.GLOSSARY]
    assert len(koreans) == len(set(koreans))
    for term in course.GLOSSARY:
        assert term.notebook in numbers
        assert re.search(r"[\uac00-\ud7a3]", term.korean), f"{term.korean!r} has no Hangul"
        assert term.english and term.meaning


def test_lookups() -> None:
    assert course.claim("C2.2").korean == "기울기 소멸"
    assert course.notebook(0).filename == "00_welcome.ipynb"
    with pytest.raises(KeyError, match=r"C0\.1 to C5\.6"):
        course.claim("C9.9")
    with pytest.raises(KeyError, match="0 to 8"):
        course.notebook(9)


def _rows(table: str) -> int:
    """Rows of a Markdown table, the header included, the |---| rule not."""
    return sum(line.startswith("| ") for line in table.splitlines())


def test_markdown_tables_have_a_row_per_entry() -> None:
    assert _rows(course.course_map_markdown()) == len(course.NOTEBOOKS) + 1
    assert _rows(course.claims_markdown()) == len(course.CLAIMS) + 1
    assert _rows(course.glossary_markdown()) == len(course.GLOSSARY) + 1
    only_00 = course.glossary_markdown(0)
    assert "딥러닝" in only_00 and "플라토" not in only_00


def test_docs_are_written_from_the_map() -> None:
    """docs/ must say what dlcourse/course.py says: run `make docs` after editing the map."""
    assert (ROOT / "docs" / "course-map.md").read_text(encoding="utf-8") == (
        course.course_map_document()
    )
    assert (ROOT / "docs" / "glossary.md").read_text(encoding="utf-8") == course.glossary_document()


def test_write_docs(tmp_path: Path) -> None:
    course.write_docs(str(tmp_path))
    assert (tmp_path / "course-map.md").read_text(encoding="utf-8").startswith("# Course map")
    assert "용어집" in (tmp_path / "glossary.md").read_text(encoding="utf-8")
