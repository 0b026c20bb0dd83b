"""Student and instructor editions of the course notebooks, and the exercise checks both editions run.

The committed notebooks are the **instructor edition**: every exercise cell holds its
reference solution and nbval runs them. An exercise cell is tagged ``solution``; in it,
each function to write starts its body with a hint comment::

    def my_barycentric(p, a, b, c):
        # hint: signed areas of the sub-triangles (p, b, c) and (p, c, a) over that of (a, b, c)
        def cross(s, t): ...

The **student edition** (``make student``, i.e. ``python -m csmlab.editions --out build/student
notebooks/*.ipynb``) keeps every cell as it is, except that in ``solution`` cells each such
function body becomes its hint and ``raise NotImplementedError(hint)`` (signature and
docstring stay). Nothing else changes, so both editions run top to bottom.

Check cells call :func:`check`: it runs the notebook's comparison against the reference,
prints a ✓, raises ``AssertionError`` with the hint on a wrong answer, and on a stub
prints "not done yet" with the hint and returns, so the notebook goes on.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import sys
from pathlib import Path

SOLUTION_TAG = "solution"
HINT_PREFIX = "# hint:"
TODO_MARK = "○ not done yet"


def check(compare, *answers, **kwargs) -> str:
    """Run ``compare(*answers, **kwargs)`` (a notebook's check, returning "✓ ..." or "✗ hint") and report.

    A stub (``NotImplementedError``) is "not done yet", with its hint; a "✗" raises
    ``AssertionError`` with the check's hint. Returns the printed message.
    """
    if not callable(compare):
        raise ValueError(f"compare must be the notebook's check function, got {type(compare).__name__}")
    try:
        msg = compare(*answers, **kwargs)
    except NotImplementedError as stub:
        msg = f"{TODO_MARK}: {stub}" if str(stub) else f"{TODO_MARK}: write the function above"
        print(msg)
        return msg
    if not isinstance(msg, str):
        raise ValueError(f"the check must return a message string, got {type(msg).__name__}")
    print(msg)
    assert msg.startswith("✓"), msg
    return msg


def stub_source(source: str) -> str:
    """The student version of a solution cell: each hinted function's body -> its hint + NotImplementedError.

    A hinted function is a top-level ``def`` whose body (after an optional docstring) starts
    with a ``# hint: ...`` line; from that line to the function's end is replaced.
    """
    lines = source.split("\n")
    stubs = []
    for fn in ast.parse(source).body:
        if not isinstance(fn, ast.FunctionDef):
            continue
        # 0-based: the def line is fn.lineno - 1; the hint is the first comment line of the body
        hint_at = next((i for i in range(fn.lineno, fn.end_lineno) if lines[i].strip().startswith(HINT_PREFIX)),
                       None)
        if hint_at is None:
            continue
        text = lines[hint_at].strip()[len(HINT_PREFIX):].strip()
        indent = lines[hint_at][: len(lines[hint_at]) - len(lines[hint_at].lstrip())]
        stubs.append((hint_at, fn.end_lineno, indent, text))
    if not stubs:
        raise ValueError("a solution cell must hold at least one function whose body starts with "
                         f"'{HINT_PREFIX} ...' (the student edition's hint), got none in:\n{source[:200]}")
    for start, end, indent, text in sorted(stubs, reverse=True):
        lines[start:end] = [f"{indent}{HINT_PREFIX} {text}", f"{indent}raise NotImplementedError({text!r})"]
    return "\n".join(lines)


def _split_source(text: str) -> list[str]:
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def student_notebook(nb: dict) -> dict:
    """A copy of the notebook dict with every ``solution`` cell stubbed (outputs cleared there)."""
    out = copy.deepcopy(nb)
    for cell in out["cells"]:
        if cell["cell_type"] == "code" and SOLUTION_TAG in cell.get("metadata", {}).get("tags", []):
            cell["source"] = _split_source(stub_source("".join(cell["source"])))
            cell["outputs"], cell["execution_count"] = [], None
    return out


def solution_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if SOLUTION_TAG in c.get("metadata", {}).get("tags", [])]


def write_student_edition(paths, out_dir) -> list[Path]:
    """Write the student edition of each notebook in ``paths`` into ``out_dir``; returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for p in map(Path, paths):
        nb = json.loads(p.read_text(encoding="utf-8"))
        target = out_dir / p.name
        target.write_text(json.dumps(student_notebook(nb), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(target)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m csmlab.editions", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", help="instructor-edition notebooks (the committed ones)")
    parser.add_argument("--out", default="build/student", help="folder for the student edition")
    args = parser.parse_args(argv)
    for path in write_student_edition(args.notebooks, args.out):
        n = len(solution_cells(json.loads(path.read_text(encoding="utf-8"))))
        print(f"wrote {path} ({n} exercise cells stubbed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
