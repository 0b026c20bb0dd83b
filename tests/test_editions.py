"""Student and instructor editions: the stubbing, the checks' three outcomes, and the student notebooks run.

The student edition of every course notebook is executed: each exercise check must report its stub
as "not done yet" with a hint, and the notebook must run top to bottom.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from csmlab.editions import SOLUTION_TAG, TODO_MARK, check, solution_cells, stub_source, student_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))


def _nb(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_every_notebook_tags_its_exercise_solutions():
    untagged = {p.stem for p in NOTEBOOKS if not solution_cells(_nb(p))}
    assert NOTEBOOKS and not untagged, untagged


def test_stub_keeps_signature_and_docstring_and_raises_the_hint():
    source = ('import torch\n\n\ndef my_f(x, y):\n    """Doc."""\n    # hint: add them\n    def inner(a):\n'
              '        return a\n    return inner(x) + y\n\n\nZ = 3\n')
    stub = stub_source(source)
    assert 'def my_f(x, y):\n    """Doc."""\n    # hint: add them\n    raise NotImplementedError(\'add them\')' in stub
    assert "inner" not in stub and stub.endswith("Z = 3\n")
    ns = {}
    exec(stub, ns)
    with pytest.raises(NotImplementedError, match="add them"):
        ns["my_f"](1, 2)
    with pytest.raises(ValueError, match="hint"):
        stub_source("def f(x):\n    return x\n")


def test_check_reports_done_not_done_and_wrong(capsys):
    def compare(fn):
        return "✓ ok" if fn(2) == 4 else "✗ square it"

    def stub(x):
        raise NotImplementedError("square x")

    assert check(compare, lambda x: x * x) == "✓ ok"
    assert check(compare, stub) == f"{TODO_MARK}: square x"
    with pytest.raises(AssertionError, match="square it"):
        check(compare, lambda x: x + 1)
    with pytest.raises(ValueError, match="compare must be"):
        check("not a function")
    assert "square x" in capsys.readouterr().out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_student_edition_changes_only_the_solution_cells(path):
    nb = _nb(path)
    student = student_notebook(nb)
    solutions = solution_cells(nb)
    assert solutions, f"{path.name} has no cell tagged {SOLUTION_TAG!r}"
    for before, after in zip(nb["cells"], student["cells"]):
        if SOLUTION_TAG in before.get("metadata", {}).get("tags", []):
            assert "raise NotImplementedError(" in "".join(after["source"])
            assert before["id"] == after["id"]
        else:
            assert before == after


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_student_edition_runs_top_to_bottom_and_every_check_says_not_done(path, tmp_path):
    from csmlab.editions import write_student_edition

    (student,) = write_student_edition([path], tmp_path)
    for asset in ("assets",):           # what the notebooks read next to themselves
        if (path.parent / asset).is_dir():
            os.symlink(path.parent / asset, tmp_path / asset)
    out = tmp_path / "executed.ipynb"
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "PYTHONPATH": os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    done = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                           "--ExecutePreprocessor.timeout=1800", "--output", str(out), str(student)],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    texts = ["".join(o.get("text", "")) for c in _nb(out)["cells"] for o in c.get("outputs", [])]
    todo = [t for t in texts if TODO_MARK in t]
    # every top-level check(...) call runs on a stub in the student edition (indented ones try wrong answers)
    n_checks = sum(line.startswith("check(") for c in _nb(path)["cells"] if c["cell_type"] == "code"
                   for line in "".join(c["source"]).splitlines())
    assert len(todo) >= n_checks > 0, f"{len(todo)} 'not done' reports for {n_checks} checks: {todo}"
    assert all(":" in t.split(TODO_MARK, 1)[1] for t in todo), "every 'not done' report carries a hint"
