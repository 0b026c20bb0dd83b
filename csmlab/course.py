"""Course runner: execute every notebook headless and summarise (``make course``).

Each notebook ends by calling :func:`headline` once with its headline metric;
the runner reads that line back from the executed notebook's outputs.

    python -m csmlab.course [--scale smoke] [--out build/course] [notebooks ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HEADLINE_PREFIX = "HEADLINE:"


def headline(name: str, value, paper=None) -> str:
    """Print (and return) the notebook's headline metric in the line format the runner reads."""
    shown = f"{value:.4g}" if isinstance(value, float) else f"{value}"
    text = f"{HEADLINE_PREFIX} {name} = {shown}"
    if paper is not None:
        text += f" (paper: {paper})"
    print(text)
    return text


def _find_headline(nb: dict) -> str:
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            text = out.get("text", "")
            text = "".join(text) if isinstance(text, list) else text
            for line in text.splitlines():
                if line.startswith(HEADLINE_PREFIX):
                    return line[len(HEADLINE_PREFIX):].strip()
    return "(no headline printed)"


def _inject_parameters(nb, params: dict) -> None:
    """Insert a cell right after the cell tagged ``parameters`` that overrides its values (as papermill does)."""
    import nbformat

    lines = "\n".join(f"{k} = {v!r}" for k, v in params.items())
    cell = nbformat.v4.new_code_cell("# injected by csmlab.course\n" + lines)
    cell.metadata["tags"] = ["injected-parameters"]
    index = next((i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])), -1)
    nb.cells.insert(index + 1, cell)


def kernel_env() -> dict[str, str]:
    """The environment of the notebook kernels: ours, with matplotlib's inline backend and plotly's HTML.

    ``make`` exports ``MPLBACKEND=Agg`` for the tests; a kernel that inherited it would
    draw no figure into the executed notebooks and their HTML. Plotly figures also carry
    HTML with plotly.js embedded, so the exported pages show them offline.
    """
    return {**os.environ, "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "PLOTLY_RENDERER": "plotly_mimetype+notebook"}


def run_notebook(path: Path, out_dir: Path, scale: str, timeout: int) -> tuple[float, str, str]:
    """Execute one notebook headless; write .ipynb and .html to out_dir. Returns (seconds, status, headline)."""
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    out_dir.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(str(path), as_version=4)
    _inject_parameters(nb, {"SCALE": scale})
    start = time.perf_counter()
    status = "ok"
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute(env=kernel_env())
    except Exception as err:  # noqa: BLE001 - report every failure in the table, then exit non-zero
        status = f"FAILED: {type(err).__name__}: {str(err).splitlines()[0][:80] if str(err) else ''}"
    seconds = time.perf_counter() - start
    nbformat.write(nb, str(out_dir / path.name))
    body, _ = HTMLExporter().from_notebook_node(nb)
    (out_dir / (path.stem + ".html")).write_text(body, encoding="utf-8")
    return seconds, status, _find_headline(nb)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Execute the course notebooks headless and print a summary table.")
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: notebooks/[0-9]*.ipynb)")
    parser.add_argument("--scale", default="smoke", choices=["smoke", "medium", "full"])
    parser.add_argument("--out", default="build/course", help="folder for executed notebooks and HTML")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    paths = [Path(p) for p in args.notebooks] or sorted(Path("notebooks").glob("[0-9]*.ipynb"))
    if not paths:
        print("no notebooks found under notebooks/", file=sys.stderr)
        return 1
    rows = []
    for p in paths:
        print(f"running {p} ...", flush=True)
        rows.append((p.name, *run_notebook(p, Path(args.out), args.scale, args.timeout)))
    width = max(len(r[0]) for r in rows)
    print(f"\n{'notebook'.ljust(width)}  seconds  status  headline")
    for name, sec, status, head in rows:
        print(f"{name.ljust(width)}  {sec:7.1f}  {status}  {head}")
    print(f"\nexecuted notebooks and HTML are in {args.out}/")
    (Path(args.out) / "summary.json").write_text(json.dumps(
        [dict(notebook=n, seconds=round(s, 1), status=st, headline=h) for n, s, st, h in rows], indent=1))
    return 0 if all(r[2] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
