"""Hostile journal entries (issue 16, class 4): one odd entry never crashes a run; bad entries
are skipped and counted; no field costs more than the 1 MiB cap."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import pytest
from conftest import logsense
from test_journal import ENTRIES, JOURNAL_REMOTE, export_text

from logsense import journal

GOOD = ENTRIES[0]  # a libvirtd error every run must still find


def run_json(tmp_path: Path, *lines: str) -> subprocess.CompletedProcess:
    path = tmp_path / "journal.json"
    path.write_text("".join(line + "\n" for line in (json.dumps(GOOD), *lines)))
    return logsense("events", "--format", "jsonl", str(path), check=False)


def assert_good_entry_still_read(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error: " not in proc.stderr.replace(
        "internal error: End of file", "")
    msgs = [json.loads(line)["message"] for line in proc.stdout.splitlines()]
    assert "internal error: End of file from monitor" in msgs


@pytest.mark.parametrize("odd", [
    {"_PID": [300]}, {"_PID": ["1", "2"]}, {"PRIORITY": "²"}, {"PRIORITY": [3, 4]},
    {"PRIORITY": "99999999999999999999999"},
    {"CODE_LINE": [12, 13]}, {"MESSAGE": {"a": 1}}, {"MESSAGE": [1000, 2000]}, {"_HOSTNAME": None},
    {"__REALTIME_TIMESTAMP": "x"},
])
def test_odd_field_shapes_are_read_as_well_as_they_can_be(tmp_path: Path, odd: dict):
    entry = {**GOOD, **odd, "MESSAGE": odd.get("MESSAGE", "internal error: End of file from monitor")}
    proc = run_json(tmp_path, json.dumps(entry))
    assert_good_entry_still_read(proc)


@pytest.mark.parametrize("stamp", ["100000000000000000000", "-5", "1e30", ""])
def test_an_entry_with_an_impossible_time_is_skipped_and_said(tmp_path: Path, stamp: str):
    entry = {**GOOD, "__REALTIME_TIMESTAMP": stamp, "MESSAGE": "odd entry"}
    proc = run_json(tmp_path, json.dumps(entry))
    assert_good_entry_still_read(proc)
    assert "journal entry skipped" in proc.stderr or "odd entry" in proc.stdout


def test_deep_nesting_and_a_huge_line_are_skipped_not_fatal(tmp_path: Path):
    deep = '{"MESSAGE": ' + "[" * 100_000 + "]" * 100_000 + "}"
    huge = json.dumps({**GOOD, "MESSAGE": "x" * (3 << 20)})
    proc = run_json(tmp_path, deep, huge)
    assert_good_entry_still_read(proc)
    assert "not a journal JSON object" in proc.stderr and "longer than 1 MiB" in proc.stderr


def test_export_field_claiming_exabytes_reads_no_more_than_is_there(tmp_path: Path):
    body = export_text([GOOD]).encode()
    evil = b"__REALTIME_TIMESTAMP=1709633472000000\nMESSAGE\n" + struct.pack("<Q", 1 << 62) + b"short\n\n"
    path = tmp_path / "entries.export"
    path.write_bytes(body + evil)
    proc = logsense("events", "--format", "jsonl", str(path), check=False)
    assert_good_entry_still_read(proc)


def test_export_binary_field_over_the_cap_is_cut_and_the_next_entry_read(tmp_path: Path):
    big = b"__REALTIME_TIMESTAMP=1709633470000000\nMESSAGE\n" + struct.pack("<Q", 3 << 20) + b"y" * (3 << 20) + b"\n\n"
    path = tmp_path / "entries.export"
    path.write_bytes(big + export_text([GOOD]).encode())
    with open(path, "rb") as f:
        recs = list(journal.read_export(f, str(path), None))
    assert len(recs[0].message) == journal.MAX_FIELD and recs[1].message == GOOD["MESSAGE"]


def test_a_real_journal_with_an_integer_field_sent_twice(tmp_path: Path):
    """CODE_LINE set by the client and again by a library: systemd.journal gives a list."""
    export = export_text([{**GOOD, "CODE_LINE": "12"}]).replace("CODE_LINE=12\n", "CODE_LINE=12\nCODE_LINE=13\n"
                                                                "_PID=7\n")
    (tmp_path / "e.export").write_text(export)
    jdir = tmp_path / "var" / "log" / "journal" / "0123456789abcdef0123456789abcdef"
    jdir.mkdir(parents=True)
    subprocess.run([JOURNAL_REMOTE, "-o", str(jdir / "system.journal"), str(tmp_path / "e.export")], check=True,
                   capture_output=True)
    proc = logsense("events", "--format", "jsonl", str(tmp_path / "var"), check=False)
    assert_good_entry_still_read(proc)
    assert json.loads(proc.stdout.splitlines()[0])["message"] == GOOD["MESSAGE"]
