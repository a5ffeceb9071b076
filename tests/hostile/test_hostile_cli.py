"""Hostile command lines and stamps (issue 16, classes 16, 17): each is a clear one-line input
error or is handled; nothing is an internal error."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FIXTURES, logsense

SAMPLE = str(FIXTURES / "sample-outage")


@pytest.mark.parametrize("args, words", [
    (["--window", "nan"], "--window must be"), (["--window", "inf"], "--window must be"),
    (["--window", "1e308"], "--window must be"), (["--window", "-5"], "--window must be"),
    (["-o", "/nonexistent/folder/report.txt"], "cannot write"),
    (["--year", "99999"], "--year must be"), (["--year", "0"], "--year must be"),
])
def test_bad_values_are_one_line_input_errors(args, words):
    proc = logsense("analyze", *args, SAMPLE, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("logsense: error: ") and words in proc.stderr


def test_stamps_at_the_edges_of_the_calendar_are_not_internal_errors(tmp_path: Path):
    (tmp_path / "libvirtd.log").write_text(
        "9999-12-31 23:59:59.000-2359: 1: error : f:1 : Cannot access storage file '/a': No such file or directory\n"
        "0001-01-01 00:00:00.000+0000: 1: error : f:1 : Cannot access storage file '/b': No such file or directory\n"
        "2024-03-05 10:11:12.345+0000: 1: error : f:1 : Cannot access storage file '/c': No such file or directory\n")
    (tmp_path / "messages").write_text("Jan  1 00:00:01 kvm01 kernel: Out of memory: Killed process 1 (qemu-kvm)\n")
    for extra in ([], ["--tz", "Asia/Tokyo", "--year", "1"], ["--year", "9999", "--tz", "America/Adak"]):
        proc = logsense("analyze", "--format", "json", *extra, str(tmp_path), check=False)
        assert proc.returncode == 0 and "internal error" not in proc.stderr, proc.stderr


def test_cr_only_line_endings_are_lines(tmp_path: Path):
    log = tmp_path / "libvirtd.log"
    log.write_bytes(b"".join(
        f"2024-03-05 10:00:0{i}.000+0000: 1: error : f:1 : Cannot access storage file '/img{i}': "
        "No such file or directory\r".encode() for i in range(3)))
    out = logsense("events", "--format", "jsonl", str(log)).stdout.splitlines()
    assert len(out) == 3 and all("\\r" not in line for line in out)
