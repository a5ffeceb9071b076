"""notebooks/explore-outage.ipynb: stored without outputs, and it runs top to bottom."""

from __future__ import annotations

import json
import sys

import nbformat
import pytest
from conftest import ROOT

NOTEBOOK = ROOT / "notebooks" / "explore-outage.ipynb"


@pytest.fixture
def venv_kernel(tmp_path, monkeypatch) -> str:
    """A kernelspec that runs this interpreter (the venv's), found before any user's own
    `python3` kernel."""
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "logsense test kernel", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return "python3"


def test_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    assert all(not c.outputs and c.execution_count is None for c in code)


def test_notebook_runs_top_to_bottom(venv_kernel):
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable); print(logsense.__file__)"))
    NotebookClient(nb, kernel_name=venv_kernel, timeout=120,
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()  # raises on any error
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    executable, module = outputs[-1]["text"].split()
    assert executable == sys.executable
    assert module == str(ROOT / "logsense" / "__init__.py")
    mimes = [set(o.get("data", {})) for o in outputs]
    assert sum("image/png" in m for m in mimes) == 2  # the timeline and the heatmap, as pictures
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("<section class='incident" in h for h in html)  # the incidents, as in the report
