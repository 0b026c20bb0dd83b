"""The packaging files agree with each other: environment.yml must not drift from pyproject.toml."""

import re
from pathlib import Path

import pytest
import yaml

try:
    import tomllib  # Python >= 3.11
except ModuleNotFoundError:                         # Python 3.10: the same parser as the tomli package
    tomllib = pytest.importorskip("tomli", reason="Python 3.10 reads pyproject.toml with tomli; not installed")

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = _pyproject()["project"]
    extras = project["optional-dependencies"]
    wanted = {_name(r) for r in project["dependencies"]} | {_name(r) for r in extras["dev"] + extras["bench"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    listed = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            listed |= {_name(r) for r in dep.get("pip", []) if not r.startswith("-")}
        else:
            listed.add(_name(dep))
    listed -= {"python", "pip"}
    assert wanted - listed == set(), f"in pyproject.toml but not environment.yml: {sorted(wanted - listed)}"
    assert listed - wanted == set(), f"in environment.yml but not pyproject.toml: {sorted(listed - wanted)}"


def test_torch_is_pinned_to_the_same_version_everywhere():
    deps = _pyproject()["project"]["dependencies"]
    pins = [d for d in deps if _name(d) == "torch"]
    assert pins == ["torch==2.13.0"], pins
    assert "torch==2.13.0" in (ROOT / "environment.yml").read_text()
    assert "torch==2.13.0" in (ROOT / "Makefile").read_text()


def test_gpu_extra_names_nvdiffrast():
    extras = _pyproject()["project"]["optional-dependencies"]
    assert [_name(r) for r in extras["gpu"]] == ["diffrp-nvdiffrast"]


def test_notebooks_have_no_outputs_and_a_parameters_cell():
    import json
    notebooks = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    for path in notebooks:
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert code, f"{path.name} has no code cells"
        assert "parameters" in code[0]["metadata"].get("tags", []), f"{path.name}: first code cell is not tagged"
        assert 'SCALE = "smoke"' in "".join(code[0]["source"]), f"{path.name}: parameters cell lacks SCALE"
        with_outputs = [i for i, c in enumerate(code) if c.get("outputs")]
        assert not with_outputs, f"{path.name}: code cells {with_outputs} carry committed outputs"


def test_ci_runs_the_oldest_and_newest_supported_python_when_installed():
    import shutil
    import subprocess

    if shutil.which("bash") is None:
        pytest.skip("no bash")
    out = subprocess.run(["bash", str(ROOT / ".ci" / "other_pythons"), "--list"], capture_output=True, text=True,
                         check=True).stdout
    oldest = re.search(r'requires-python = ">=(\d+\.\d+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert out.splitlines()[0].startswith(f"python{oldest}: "), out
    assert ".ci/other_pythons" in (ROOT / ".ci" / "run").read_text()
