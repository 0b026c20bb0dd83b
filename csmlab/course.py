"""Course runner: execute every notebook headless and summarise (``make course``).

Each notebook ends by calling :func:`headline` once with its headline metric;
the runner reads that line back from the executed notebook's outputs. Each
notebook also records its metrics on the shared benchmark split
(``csmlab.data.synthetic.benchmark_split``) with :func:`score`, one row per
method and rung; the runner collects the rows of every notebook into
``<out>/scoreboard.json`` and prints them as one table at the end.

    python -m csmlab.course [--scale smoke] [--out build/course] [notebooks ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HEADLINE_PREFIX = "HEADLINE:"
SCORE_PREFIX = "SCORE:"
# The scoreboard's columns: (metric key passed to score(), column title).
SCORE_COLUMNS = (("transfer_pck", "transfer PCK@0.1"), ("transfer_apk", "APK@0.1"),
                 ("surface_error", "surface error"), ("camera_error", "camera error (deg)"),
                 ("articulation_error", "articulation error (deg)"), ("pck_bbox", "PCK@0.1 (bbox)"),
                 ("kap", "KAP@0.1"))


def headline(name: str, value, paper=None) -> str:
    """Print (and return) the notebook's headline metric in the line format the runner reads."""
    shown = f"{value:.4g}" if isinstance(value, float) else f"{value}"
    text = f"{HEADLINE_PREFIX} {name} = {shown}"
    if paper is not None:
        text += f" (paper: {paper})"
    print(text)
    return text


def score(method: str, rung: str, **metrics) -> str:
    """Record one scoreboard row: a method's metrics on the benchmark split's ``rung``.

    Prints (and returns) ``SCORE: {"method": ..., "rung": ..., <metrics>}`` (one JSON
    object on one line), which ``python -m csmlab.course`` collects from every executed
    notebook into ``scoreboard.json`` and its closing table. The table's columns are the
    keys ``transfer_pck`` (keypoint transfer PCK@0.1), ``transfer_apk`` (APK@0.1),
    ``surface_error``, ``camera_error`` (median rotation error, degrees), ``articulation_error``
    (median joint-angle error, degrees), ``pck_bbox`` (matching PCK@0.1 of the object's box) and ``kap``
    (KAP@0.1); give those a method has (a missing one shows as "-"), plus any other numbers worth keeping::

        score("CSM (medium checkpoint)", "B", transfer_pck=0.61, transfer_apk=0.3,
              surface_error=0.2, camera_error=20.5)

    ``rung`` is "A", "B" or "C" (``csmlab.data.synthetic.RUNGS``); values must be real numbers or None.
    """
    from csmlab.data.synthetic.benchmark import RUNGS

    if not isinstance(method, str) or not method.strip():
        raise ValueError(f"method must be a non-empty string naming the method, got {method!r}")
    if rung not in RUNGS:
        raise ValueError(f"rung must be one of {sorted(RUNGS)}, got {rung!r}")
    row = {"method": method, "rung": rung}
    for key, value in metrics.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  and not hasattr(value, "__float__")):
            raise ValueError(f"metric {key!r} must be a real number or None, got {type(value).__name__}")
        row[key] = None if value is None else round(float(value), 4)
    text = f"{SCORE_PREFIX} {json.dumps(row)}"
    print(text)
    return text


def _output_lines(nb: dict):
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            text = out.get("text", "")
            text = "".join(text) if isinstance(text, list) else text
            yield from text.splitlines()


def _find_headline(nb: dict) -> str:
    for line in _output_lines(nb):
        if line.startswith(HEADLINE_PREFIX):
            return line[len(HEADLINE_PREFIX):].strip()
    return "(no headline printed)"


def _find_scores(nb: dict) -> list[dict]:
    return [json.loads(line[len(SCORE_PREFIX):]) for line in _output_lines(nb) if line.startswith(SCORE_PREFIX)]


def scoreboard_table(rows: list[dict]) -> str:
    """The scoreboard rows as a Markdown table (method, rung, the SCORE_COLUMNS, notebook), sorted by rung."""
    head = ["method", "rung"] + [title for _, title in SCORE_COLUMNS] + ["notebook"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(rows, key=lambda r: (r.get("rung", ""), r.get("notebook", ""))):
        cells = [str(r.get("method", "?")), str(r.get("rung", "?"))]
        cells += ["-" if r.get(k) is None else f"{r[k]:.3g}" for k, _ in SCORE_COLUMNS]
        cells.append(str(r.get("notebook", "")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


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


SOCKET_DIR_MAX = 80   # leaves room for "/csmlab-<pid>-<n>" under the ~104-byte limit


def kernel_config():
    """The kernel manager's settings: Unix sockets instead of TCP ports where the system has them.

    ipykernel >= 7.4 warns, for every TCP kernel without CurveZMQ keys, that its traffic "is
    susceptible to eavesdropping": eight warnings per ``make course``. A headless run needs no
    network port, so POSIX systems talk to the kernel over Unix sockets. Their path must be
    absolute: the kernel runs in ``notebooks/``, the runner wherever it was started. Windows has
    no ``ipc`` transport in ZeroMQ and keeps TCP on localhost.
    """
    from jupyter_core.paths import jupyter_runtime_dir
    from traitlets.config import Config

    config = Config()
    if os.name == "posix":
        runtime = Path(jupyter_runtime_dir())
        if len(str(runtime)) > SOCKET_DIR_MAX:      # a Unix socket path has at most ~104 bytes
            runtime = Path(tempfile.gettempdir())
        runtime.mkdir(parents=True, exist_ok=True)
        config.KernelManager.transport = "ipc"
        config.KernelManager.ip = str(runtime / f"csmlab-{os.getpid()}")
    return config


def run_notebook(path: Path, out_dir: Path, scale: str, timeout: int) -> tuple[float, str, str]:
    """Execute one notebook headless; write .ipynb and .html to out_dir. Returns (seconds, status, headline).

    The notebook's scoreboard rows are read back with :func:`read_scores` from the written .ipynb.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    out_dir.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(str(path), as_version=4)
    _inject_parameters(nb, {"SCALE": scale})
    start = time.perf_counter()
    status = "ok"
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", config=kernel_config(),
                       resources={"metadata": {"path": str(path.parent)}}).execute(env=kernel_env())
    except Exception as err:  # noqa: BLE001 - report every failure in the table, then exit non-zero
        status = f"FAILED: {type(err).__name__}: {str(err).splitlines()[0][:80] if str(err) else ''}"
    seconds = time.perf_counter() - start
    nbformat.write(nb, str(out_dir / path.name))
    body, _ = HTMLExporter().from_notebook_node(nb)
    (out_dir / (path.stem + ".html")).write_text(body, encoding="utf-8")
    return seconds, status, _find_headline(nb)


def read_scores(executed: Path) -> list[dict]:
    """The :func:`score` rows printed by an executed notebook, each with its ``notebook`` name."""
    import nbformat

    nb = nbformat.read(str(executed), as_version=4)
    return [{**row, "notebook": executed.name} for row in _find_scores(nb)]


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
    scores = [row for p in paths for row in read_scores(Path(args.out) / p.name)]
    (Path(args.out) / "scoreboard.json").write_text(json.dumps(scores, indent=1))
    print(f"\nscoreboard on the shared benchmark split ({len(scores)} rows, {args.out}/scoreboard.json):")
    print(scoreboard_table(scores) if scores else "(no notebook recorded a score)")
    return 0 if all(r[2] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
