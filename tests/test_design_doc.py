"""The design document the docstrings cite is in the repository, and the sections they cite exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_docstrings_cite_docs_design_md_and_its_sections_exist():
    doc = (ROOT / "docs" / "design.md").read_text()
    sections = {int(n) for n in re.findall(r"^## (\d+)\.", doc, flags=re.M)}
    cited = []
    for path in list((ROOT / "csmlab").rglob("*.py")) + list((ROOT / "tests").glob("test_*.py")):
        text = path.read_text()
        assert "DESIGN.md" not in text or path.name == "test_design_doc.py", f"{path} cites DESIGN.md"
        cited += [int(n) for n in re.findall(r"docs/design\.md, section (\d)", text)]
    assert len(cited) >= 10 and set(cited) <= sections, (sorted(set(cited)), sections)
