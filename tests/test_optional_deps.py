"""A command that needs an optional package says so in one line (exit 2) before it reads anything:
run for real with the package made unimportable, on a FIFO no one writes (reading it would block)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import LOGSENSE, ROOT

BLOCK_SECONDS = 60  # far beyond the second the check takes: a run that reads the FIFO waits forever


def without(tmp_path: Path, *packages: str) -> dict[str, str]:
    """An environment in which `packages` raise ImportError on import, as when they are not installed."""
    shadow = tmp_path / "shadow"
    for name in packages:
        (shadow / name).mkdir(parents=True)
        (shadow / name / "__init__.py").write_text(f"raise ImportError('No module named {name}')\n")
    path = os.pathsep.join([str(shadow), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "LOGSENSE_CONFIG": "/dev/null"}


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "messages"
    os.mkfifo(path)
    return path


def run_without(tmp_path: Path, packages: tuple[str, ...], *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([*LOGSENSE, *args], capture_output=True, text=True, cwd=ROOT,
                              env=without(tmp_path, *packages), timeout=BLOCK_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"logsense {' '.join(args)} started reading before checking its optional dependency")


def test_parquet_without_pyarrow_is_one_line_before_any_reading(tmp_path: Path, fifo: Path):
    proc = run_without(tmp_path, ("pyarrow",), "events", "--format", "parquet", "-o", str(tmp_path / "e.parquet"),
                       str(fifo))
    assert proc.returncode == 2
    assert proc.stderr == "logsense: error: --format parquet needs pyarrow (pip install pyarrow)\n"
    assert not (tmp_path / "e.parquet").exists()


def test_parquet_without_output_file_is_refused_before_any_reading(tmp_path: Path, fifo: Path):
    proc = run_without(tmp_path, (), "events", "--format", "parquet", str(fifo))
    assert proc.returncode == 2 and proc.stderr == "logsense: error: --format parquet needs -o FILE\n"


def test_fleet_without_dask_is_one_line_before_any_reading(tmp_path: Path, fifo: Path):
    proc = run_without(tmp_path, ("dask", "distributed"), "analyze", "--fleet", "--format", "json", str(fifo),
                       str(ROOT / "fixtures" / "sample-outage"))
    assert proc.returncode == 2
    assert proc.stderr == "logsense: error: --fleet needs dask (pip install 'dask[distributed]')\n"


def test_the_shadow_really_hides_the_package(tmp_path: Path):
    """The check above is only worth something if the package cannot be imported in that environment."""
    proc = subprocess.run([*LOGSENSE[:1], "-c", "import pyarrow"], capture_output=True, text=True, cwd=ROOT,
                          env=without(tmp_path, "pyarrow"))
    assert proc.returncode == 1 and "ImportError" in proc.stderr
