"""Shared helpers: the real pipeline, run on fixture paths."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from logsense.pipeline import Options, Reader, parse_zone

# tests never read this machine's /etc/logsense (an empty settings file instead; tests of settings set their own)
os.environ.setdefault("LOGSENSE_CONFIG", "/dev/null")
ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
LOGSENSE = [sys.executable, "-m", "logsense"]


def read_events(paths, all_lines=False, tz="UTC", year=None, host=None, since=None, until=None):
    """(events, run) of the real pipeline over `paths`."""
    opts = Options(tz=parse_zone(tz), year=year, host=host, all_lines=all_lines, since=since, until=until)
    reader = Reader(opts)
    evs = reader.events([str(p) for p in paths])
    return evs, reader.run


def logsense(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """The real command line, as a user runs it."""
    proc = subprocess.run([*LOGSENSE, *args], capture_output=True, text=True, input=input, cwd=ROOT)
    if check and proc.returncode not in (0, 1):
        raise AssertionError(f"logsense {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


@pytest.fixture
def formats_tree(tmp_path: Path) -> Path:
    """A copy of fixtures/formats, so tests may set mtimes and add files."""
    dest = tmp_path / "host"
    shutil.copytree(FIXTURES / "formats", dest)
    return dest


@pytest.fixture(autouse=True)
def _no_daemon_left_running():
    """A test that failed while its `logsense watch` ran must not leave the daemon behind."""
    yield
    if (helpers := sys.modules.get("test_daemon_helpers")) is not None:
        helpers.reap_daemons()
