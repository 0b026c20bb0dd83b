"""The `make course` runner executes a notebook with injected parameters and reads its headline back."""

import os

import nbformat
import pytest

from csmlab import course


def _notebook(path, body):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('SCALE = "smoke"\nSEED = 0')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, str(path))


def test_runner_injects_scale_and_reads_the_headline(tmp_path):
    nb_path = tmp_path / "00_demo.ipynb"
    _notebook(nb_path, "import csmlab.course\ncsmlab.course.headline(f'scale {SCALE}', 2.5)")
    seconds, status, head = course.run_notebook(nb_path, tmp_path / "out", "medium", timeout=120)
    assert status == "ok"
    assert head == "scale medium = 2.5"
    assert (tmp_path / "out" / "00_demo.html").is_file()


def test_runner_reports_a_failing_notebook(tmp_path):
    nb_path = tmp_path / "01_broken.ipynb"
    _notebook(nb_path, "raise RuntimeError('boom')")
    _, status, head = course.run_notebook(nb_path, tmp_path / "out", "smoke", timeout=120)
    assert status.startswith("FAILED")
    assert head == "(no headline printed)"


def test_runner_keeps_figures_when_the_tests_backend_is_agg(tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")          # what `make` exports for the tests
    nb_path = tmp_path / "02_plot.ipynb"
    _notebook(nb_path, "import matplotlib.pyplot as plt\nplt.plot([0, 1])\nplt.show()")
    _, status, _ = course.run_notebook(nb_path, tmp_path / "out", "smoke", timeout=120)
    assert status == "ok"
    outputs = nbformat.read(str(tmp_path / "out" / "02_plot.ipynb"), as_version=4).cells[-1].outputs
    assert any("image/png" in o.get("data", {}) for o in outputs)


def test_score_rows_are_collected_into_the_scoreboard(tmp_path, capsys):
    import json

    nb_path = tmp_path / "03_scores.ipynb"
    _notebook(nb_path, "import csmlab.course as c\n"
                       "c.score('demo', 'B', transfer_pck=0.5, transfer_apk=0.25, camera_error=12.0)\n"
                       "c.score('demo', 'C', transfer_pck=0.125, surface_error=None)")
    course.main([str(nb_path), "--out", str(tmp_path / "out")])
    rows = json.loads((tmp_path / "out" / "scoreboard.json").read_text())
    assert [(r["method"], r["rung"], r["notebook"]) for r in rows] == [("demo", "B", "03_scores.ipynb"),
                                                                       ("demo", "C", "03_scores.ipynb")]
    assert rows[0]["transfer_pck"] == 0.5 and rows[1]["surface_error"] is None
    printed = capsys.readouterr().out
    assert "| demo | B | 0.5 | 0.25 | - | 12 | - | - | - | 03_scores.ipynb |" in printed
    for bad, match in ((dict(method="", rung="B"), "method"), (dict(method="m", rung="D"), "rung"),
                       (dict(method="m", rung="A", transfer_pck="high"), "transfer_pck")):
        with pytest.raises(ValueError, match=match):
            course.score(**bad)


@pytest.mark.skipif(os.name != "posix", reason="ZeroMQ has no ipc transport on Windows")
def test_kernels_talk_over_unix_sockets_without_the_tcp_warning(tmp_path, capfd):
    nb_path = tmp_path / "03_transport.ipynb"
    _notebook(nb_path, "import os\n"
                       "from ipykernel.kernelapp import IPKernelApp\n"
                       "import csmlab.course\n"
                       "app = IPKernelApp.instance()\n"
                       "csmlab.course.headline(f'{app.transport} {os.path.isabs(app.ip)}', 1)")
    _, status, head = course.run_notebook(nb_path, tmp_path / "out", "smoke", timeout=120)
    assert status == "ok", status
    assert head == "ipc True = 1"
    assert "without encryption" not in capfd.readouterr().err


@pytest.mark.skipif(os.name != "posix", reason="ZeroMQ has no ipc transport on Windows")
def test_make_lab_passes_the_socket_settings_to_the_server_that_owns_the_kernels():
    from jupyter_server.serverapp import ServerApp

    from csmlab.lab import kernel_flags

    app = ServerApp()
    app.parse_command_line(kernel_flags())
    assert app.config.KernelManager.transport == "ipc"
    assert os.path.isabs(app.config.KernelManager.ip)
