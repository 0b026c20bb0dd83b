"""The course as a student meets it: JupyterLab in headless Chromium (playwright), on a copy of the notebooks.

Runs notebook 00 top to bottom in the browser, checks that matplotlib figures appear, then moves a
slider of its camera explorer and checks that the 2D image *and* the plotly 3D panel inside the widget
changed. The explorers of notebooks 01 and 02 (``ReprojectionExplorer``, ``CorrespondenceExplorer``)
get the same check in a small generated notebook. On failure, screenshots go to ``build/browser/``.

Needs Debian's ``chromium`` and the ``playwright`` package (a dev dependency; its own browser
download is not used); ``.ci/run`` installs chromium when missing. The network may be closed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "build" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BUDGET_S = 180          # the target: the whole test under 3 minutes (warned above it)
HARD_LIMIT_S = 600      # failed above this: on a machine shared by many jobs the target cannot be promised
NOTEBOOK_S = 300        # running notebook 00 in the browser

EXPLORERS_NOTEBOOK = [
    "import torch\n"
    "from csmlab.methods.ttp import bird_problem\n"
    "from csmlab.viz.ttp import ReprojectionExplorer\n"
    "ex01 = ReprojectionExplorer(bird_problem(2, seed=0, resolution=32, zero_articulation=True, images=True), "
    "index=1)\n"
    "ex01",
    "from csmlab.data.synthetic import make_dataset\n"
    "from csmlab.methods.csm.fit import stack_samples\n"
    "from csmlab.methods.csm.uvmap import TemplateUV\n"
    "from csmlab.viz.csm import CorrespondenceExplorer\n"
    "birds = make_dataset('birds', 2, 24, seed=0, progress=False)\n"
    "d = stack_samples(birds)\n"
    "tuv = TemplateUV(birds.category.template, birds.category.template_uv, grid=(16, 32))\n"
    "ex02 = CorrespondenceExplorer(d['image'], d['surface_xyz'], d['mask'], tuv)\n"
    "ex02",
    "from csmlab.methods.acsm import build_model, get_config\n"
    "from csmlab.data.synthetic import get_category\n"
    "from csmlab.methods.acsm.joints import joint_angles_to_rotations\n"
    "from csmlab.viz.acsm import ArticulationExplorer\n"
    "cat = get_category('birds')\n"
    "m04 = build_model(get_config('smoke', uv_grid=(8, 16)), cat)\n"
    "cam = {'scale': torch.tensor(0.8), 'quat': torch.tensor([1.0, 0.0, 0.0, 0.0]), 'trans': torch.zeros(2)}\n"
    "ex04 = ArticulationExplorer(m04, torch.rand(3, 24, 24), torch.ones(1, 24, 24), torch.rand(2, 24, 24), cam,\n"
    "                            cat.joint_names, lambda a: joint_angles_to_rotations(a, m04.rig.names))\n"
    "ex04",
    "from csmlab.viz.spherical import SphereMatchExplorer\n"
    "gen = torch.Generator().manual_seed(0)\n"
    "sph06 = torch.nn.functional.normalize(torch.randn(2, 16, 3, generator=gen), dim=-1)\n"
    "feats06 = torch.randn(2, 16, 5, generator=gen)\n"
    "ex06 = SphereMatchExplorer(torch.rand(2, 3, 16, 16, generator=gen), torch.ones(2, 4, 4, dtype=torch.bool),\n"
    "                           {'raw': [(1.0, feats06)], 'sphere': [(1.0, sph06)],\n"
    "                            'fused': [(0.8, feats06), (0.2, sph06)]}, sph06)\n"
    "ex06",
]


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not Path(CHROMIUM).exists():
        return "Debian's chromium is not installed (apt-get install chromium; .ci/run does it)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_notebook(path: Path, sources: list[str]) -> None:
    cells = [{"cell_type": "code", "id": f"e{i}", "metadata": {}, "execution_count": None, "outputs": [],
              "source": src} for i, src in enumerate(sources)]
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                       "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb, indent=1))


@pytest.fixture()
def lab(tmp_path):
    """A JupyterLab server on 127.0.0.1 over a temporary copy of notebooks/ -> (base url, token)."""
    work = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", work, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    _write_notebook(work / "explorers_01_02.ipynb", EXPLORERS_NOTEBOOK)   # and notebooks 04 and 06's explorers
    settings = tmp_path / "lab-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # Every cell stays in the page (no windowing), so outputs far down can be found.
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    env.update(JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "lab-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"), OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p]),
               CSMLAB_DATA=str(tmp_path / "data"))
    port, token = _free_port(), os.urandom(12).hex()
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--ServerApp.root_dir={work}", f"--IdentityProvider.token={token}", "--LabApp.expose_app_in_browser=True",
         "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.extension_manager=readonly"] + (["--allow-root"] if os.geteuid() == 0 else []),
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError as err:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start: "
                                       + (tmp_path / "lab.log").read_text()[-2000:]) from err
                time.sleep(0.5)
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


# JavaScript run in the page, through the app JupyterLab exposes with expose_app_in_browser.
JS_RUN_ALL = "async () => { await window.jupyterapp.commands.execute('notebook:run-all-cells'); return true; }"
JS_DONE = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  if (!panel || !panel.sessionContext || !panel.sessionContext.session) return false;
  const kernel = panel.sessionContext.session.kernel;
  const cells = Array.from(panel.content.model.cells).filter(c => c.type === 'code');
  return kernel && kernel.status === 'idle' && cells.every(c => c.executionCount !== null);
}"""
JS_ERRORS = """() => Array.from(document.querySelectorAll(
    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'))
  .map(e => e.innerText).filter(t => /Traceback|Error/.test(t)).slice(0, 3)"""
# The pictures inside one cell's widget: PNG sources and a fingerprint of each plotly panel's traces.
JS_PANELS = """(index) => {
  const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[index];
  const outputs = cell.querySelectorAll('.widget-output');
  const imgs = Array.from(cell.querySelectorAll('.widget-output img')).map(i => i.src);
  const plots = Array.from(cell.querySelectorAll('.widget-output .js-plotly-plot'))
    .map(p => JSON.stringify((p.data || []).map(t => [t.x, t.y, t.z])));
  const outside = Array.from(cell.querySelectorAll('.js-plotly-plot')).filter(p => !p.closest('.widget-output'));
  return {panels: outputs.length, imgs, plots, plotsOutside: outside.length};
}"""
JS_CELL_INDEX = """(start) => Array.from(document.querySelectorAll('.jp-Notebook .jp-Cell'))
  .findIndex(c => (c.querySelector('.jp-InputArea-editor') || {innerText: ''}).innerText.trim().startsWith(start))"""


JS_OPEN = """async (path) => {
  const app = window.jupyterapp;
  await app.restored;
  const old = app.shell.currentWidget;
  if (old && old.sessionContext) { await old.sessionContext.shutdown(); old.dispose(); }   // free the CPU
  await app.commands.execute('docmanager:open', {path});
  return true;
}"""
JS_KERNEL = """(path) => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  return !!(w && w.context && w.context.path === path && w.sessionContext && w.sessionContext.session
            && w.sessionContext.session.kernel && w.sessionContext.session.kernel.status === 'idle'); }"""


def _log(msg):
    print(f"[browser test {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _run_notebook(page, base, token, name, timeout_s):
    if "/lab" not in page.url:                   # load JupyterLab once; later notebooks open inside it
        page.goto(f"{base}/lab?token={token}")
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.commands.hasCommand('docmanager:open')",
                               timeout=90_000)
    page.evaluate(JS_OPEN, name)
    page.wait_for_function(JS_KERNEL, arg=name, timeout=60_000)
    _log(f"{name}: kernel ready, running all cells")
    page.evaluate(JS_RUN_ALL)
    page.wait_for_function(JS_DONE, timeout=timeout_s * 1000, polling=1000)
    _log(f"{name}: done")
    errors = page.evaluate(JS_ERRORS)
    assert not errors, f"{name} raised in the browser: {errors}"


def _move_and_compare(page, start, readout_index, value):
    """Type ``value`` into the ``readout_index``-th slider readout of the cell starting with ``start``."""
    index = page.evaluate(JS_CELL_INDEX, start)
    assert index >= 0, f"no cell starts with {start!r}"
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.scroll_into_view_if_needed()
    page.wait_for_function(f"() => ({JS_PANELS})({index}).plots.length > 0", timeout=30_000)
    before = page.evaluate(JS_PANELS, index)
    assert before["imgs"] and before["plots"], f"{start}: the widget shows no 2D image or no 3D panel: {before}"
    assert before["plotsOutside"] == 0, f"{start}: a plotly figure sits outside the widget"
    _log(f"{start}: panels {len(before['imgs'])} images, {len(before['plots'])} 3D; moving a slider")
    readout = cell.locator(".widget-readout").nth(readout_index)
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(str(value))
    page.keyboard.press("Enter")
    page.wait_for_function(
        f"(b) => {{ const a = ({JS_PANELS})({index}); return a.imgs.length && a.plots.length "
        "&& a.imgs[0] !== b.imgs[0] && a.plots[0] !== b.plots[0]; }", arg=before, timeout=60_000, polling=500)
    after = page.evaluate(JS_PANELS, index)
    assert after["plotsOutside"] == 0 and len(after["plots"]) == len(before["plots"]), \
        f"{start}: 3D panels stacked or escaped the widget: {before['plots'].__len__()} -> {after}"
    return before, after


@pytest.mark.skipif(_missing() is not None, reason=_missing() or "")
def test_notebook_00_and_the_explorers_work_in_a_real_browser(lab, tmp_path):
    from playwright.sync_api import sync_playwright

    base, token = lab
    start = time.monotonic()
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000})
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(60_000)
        step = "notebook 00"
        try:
            _run_notebook(page, base, token, "00_rendering.ipynb", NOTEBOOK_S)
            figures = page.locator(".jp-OutputArea-output[data-mime-type='image/png'] img").count()
            assert figures >= 5, f"notebook 00 shows {figures} matplotlib figures in the browser (expected >= 5)"
            step = "00 camera explorer"
            _move_and_compare(page, "explorer = viz.camera_explorer", 0, 120)
            step = "01/02 explorers"
            _run_notebook(page, base, token, "explorers_01_02.ipynb", 180)
            _move_and_compare(page, "import torch", 0, 60)           # ReprojectionExplorer: azimuth
            _move_and_compare(page, "from csmlab.data.synthetic", 0, 5)   # CorrespondenceExplorer: x (px)
            _move_and_compare(page, "from csmlab.methods.acsm", 0, 40)    # ArticulationExplorer: a wing flap
            _move_and_compare(page, "from csmlab.viz.spherical", 0, 3)    # SphereMatchExplorer: token column
        except Exception:
            page.screenshot(path=str(SHOTS / f"{step.replace(' ', '_').replace('/', '-')}.png"), timeout=30_000)
            raise
        finally:
            context.close()
    seconds = time.monotonic() - start
    _log(f"finished in {seconds:.0f} s (target {BUDGET_S} s)")
    if seconds > BUDGET_S:
        warnings.warn(f"the browser test took {seconds:.0f} s, over its {BUDGET_S} s target (a loaded machine?)",
                      stacklevel=1)
    assert seconds < HARD_LIMIT_S, f"the browser test took {seconds:.0f} s (limit {HARD_LIMIT_S} s)"
