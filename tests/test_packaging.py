"""The wheel is the product: built with `python -m build`, installed in a fresh venv away from the
checkout, it analyzes the bundled sample and proves its own catalogue."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*cmd: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: int = 900) -> str:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed() -> Iterator[Path]:
    """bin/ of a fresh venv (no system site-packages) with the wheel `python -m build` made.
    Its own temporary folder: pytest prunes old basetemps, also those of a concurrent run."""
    with tempfile.TemporaryDirectory(prefix="logsense-wheel-") as name:
        tmp = Path(name)
        yield build_and_install(tmp)


def build_and_install(tmp: Path) -> Path:
    env = clean_env(tmp)
    # the sdist, then the wheel from it: both carry the data
    run(sys.executable, "-m", "build", "--outdir", tmp / "dist", ROOT, cwd=tmp, env=env)
    wheel = next((tmp / "dist").glob("logsense-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "logsense/patterns/qemu.toml" in names and "logsense/contrib/logsense.service" in names
    assert "logsense/sample_outage/var/log/libvirt/libvirtd.log" in names
    run(sys.executable, "-m", "venv", tmp / "venv", cwd=tmp, env=env)
    run(tmp / "venv/bin/pip", "install", "-q", wheel, cwd=tmp, env=env)
    return tmp / "venv/bin"


def clean_env(tmp: Path) -> dict[str, str]:
    """No PYTHONPATH pointing into the checkout (pip would take its egg-info for an install), no site config."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LOGSENSE_CONFIG")}
    return {**env, "LOGSENSE_CONFIG": "/dev/null", "XDG_CACHE_HOME": str(tmp / "cache")}


@pytest.mark.slow
def test_wheel_runs_demo_and_catalogue_check_without_a_checkout(installed: Path):
    tmp_path = installed.parent.parent
    env = clean_env(tmp_path)
    where = run(installed / "python", "-c", "import logsense, logsense.catalogue as c; "
                "print(logsense.SAMPLE); print(c.BUILTIN_DIR); print(logsense.CONTRIB)", cwd=tmp_path, env=env)
    assert all("site-packages/logsense/" in line for line in where.splitlines()), where
    demo = run(installed / "logsense", "demo", cwd=tmp_path, env=env)
    assert "web01" in demo and "No incidents" not in demo
    check = run(installed / "logsense", "catalogue", "check", "--no-timing", cwd=tmp_path, env=env)
    assert "all good" in check


@pytest.mark.slow
def test_wheel_has_version_man_page_and_unit(installed: Path):
    tmp_path = installed.parent.parent
    env = clean_env(tmp_path)
    from logsense import __version__

    assert run(installed / "logsense", "--version", cwd=tmp_path, env=env).strip() == f"logsense {__version__}"
    assert run(installed / "logsense", "man", cwd=tmp_path, env=env).startswith(".TH LOGSENSE 1")
    unit = run(installed / "logsense", "contrib", "logsense.service", cwd=tmp_path, env=env)
    assert unit == (ROOT / "contrib/logsense.service").read_text()
