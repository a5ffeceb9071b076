"""Honest input: standard input and pipes are read, what was (not) read is said, reading nothing is
exit 3 (never "no incidents"), a damaged archive is a warning and fails only under --strict."""

from __future__ import annotations

import json
import lzma
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import FIXTURES, LOGSENSE, ROOT, logsense

SAMPLE = FIXTURES / "sample-outage"
JOURNAL_XZ = next(SAMPLE.rglob("system.journal.xz"))


@pytest.fixture
def journal_json(tmp_path: Path) -> str:
    """`journalctl -o json` of the sample's journal file, by the real journalctl."""
    if shutil.which("journalctl") is None:
        pytest.skip("journalctl is not installed")
    journal = tmp_path / "system.journal"
    journal.write_bytes(lzma.decompress(JOURNAL_XZ.read_bytes()))
    return subprocess.run(["journalctl", "--file", str(journal), "-o", "json"], capture_output=True, text=True,
                          check=True).stdout


def test_journalctl_json_piped_into_dash_is_read(journal_json: str):
    proc = logsense("events", "--format", "jsonl", "-", input=journal_json)
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events and {e["file"] for e in events} == {"(stdin)"} and {e["source"] for e in events} == {"journal"}
    assert "systemd.virt_layer.daemon-killed" in {e["pattern"] for e in events}


def test_dev_stdin_on_a_pipe_is_content_detected_like_a_file():
    log = (SAMPLE / "var/log/libvirt/libvirtd.log").read_text()
    piped = subprocess.run(f"cat {SAMPLE}/var/log/libvirt/libvirtd.log | {' '.join(LOGSENSE)} events "
                           "--format jsonl /dev/stdin", shell=True, capture_output=True, text=True, cwd=ROOT)
    direct = logsense("events", "--format", "jsonl", str(SAMPLE / "var/log/libvirt/libvirtd.log"))
    assert piped.returncode == 0 and log
    strip = [{**json.loads(x), "file": None} for x in piped.stdout.splitlines()]
    assert strip and strip == [{**json.loads(x), "file": None} for x in direct.stdout.splitlines()]


def test_compressed_standard_input_is_detected_by_content():
    import gzip

    data = gzip.compress((SAMPLE / "var/log/messages").read_bytes())
    proc = subprocess.run([*LOGSENSE, "events", "--format", "jsonl", "-"], input=data, capture_output=True,
                          cwd=ROOT)
    assert proc.returncode == 0 and b"kernel.memory.oom" in proc.stdout


def test_json_stats_say_what_was_read_and_what_was_not(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("remember to rotate the keys\n")
    rep = json.loads(logsense("analyze", "--format", "json", str(SAMPLE), str(tmp_path / "notes.txt"),
                              str(tmp_path / "gone.log")).stdout)
    stats = rep["stats"]
    assert f"{SAMPLE}/var/log/libvirt/libvirtd.log" in stats["sources_read"]
    assert f"{tmp_path}/notes.txt: not a log format logsense knows, skipped" in stats["sources_missing"]
    assert f"{tmp_path}/gone.log: no such file or directory" in stats["sources_missing"]


@pytest.mark.parametrize("command", ["analyze", "events"])
def test_nothing_readable_is_exit_3_and_says_why(tmp_path: Path, command: str):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("remember to rotate the keys\n")
    proc = logsense(command, "--format", "json", str(tmp_path / "empty"), str(tmp_path / "notes.txt"), check=False)
    assert proc.returncode == 3 and proc.stdout == "" and "No incidents" not in proc.stderr
    error = proc.stderr.splitlines()[-1]
    assert error.startswith("logsense: error: nothing could be read: ")
    assert f"{tmp_path}/empty: no log file logsense knows in it" in error and "notes.txt: not a log format" in error


def test_an_empty_log_is_read_not_missing(tmp_path: Path):
    (tmp_path / "libvirtd.log").write_text("")
    proc = logsense("analyze", "--format", "json", str(tmp_path / "libvirtd.log"), check=False)
    assert proc.returncode in (0, 3)  # an empty file has no format to detect: skipped, and said so
    assert "Traceback" not in proc.stderr


def test_the_live_host_never_reports_no_incidents_from_nothing():
    proc = logsense("analyze", "--format", "json", check=False)
    assert "Traceback" not in proc.stderr
    if proc.returncode == 3:
        assert proc.stderr.startswith("logsense: error: nothing could be read: ") and "journal" in proc.stderr
    else:
        assert proc.returncode == 0 and json.loads(proc.stdout)["stats"]["sources_read"]


def damaged_archive(tmp_path: Path) -> Path:
    """The sample as a .tar.gz, cut in its last third (as by a failed copy)."""
    tgz = tmp_path / "sample.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(SAMPLE, arcname="sosreport-kvm01")
    data = tgz.read_bytes()
    tgz.write_bytes(data[: len(data) * 2 // 3])
    return tgz


def test_damaged_archive_is_a_warning_and_the_rest_is_read(tmp_path: Path):
    tgz = damaged_archive(tmp_path)
    proc = logsense("analyze", "--format", "json", str(tgz))
    assert proc.returncode == 0
    assert f"logsense: warning: {tgz}: damaged archive, read up to the damage" in proc.stderr
    stats = json.loads(proc.stdout)["stats"]
    assert stats["files_read"] >= 1 and any("damaged archive" in m for m in stats["sources_missing"])


def test_damaged_archive_fails_under_strict(tmp_path: Path):
    tgz = damaged_archive(tmp_path)
    proc = logsense("analyze", "--strict", "--format", "json", str(tgz), check=False)
    assert proc.returncode == 2 and json.loads(proc.stdout)["incidents"] is not None  # the report, then the verdict
    assert proc.stderr.splitlines()[-1].startswith("logsense: error: --strict: ")
    assert logsense("analyze", "--strict", "--format", "json", str(SAMPLE)).returncode == 0


def test_a_truncated_compressed_log_is_read_up_to_the_damage_and_fails_under_strict(tmp_path: Path):
    import gzip

    data = gzip.compress((SAMPLE / "var/log/libvirt/libvirtd.log").read_bytes())
    log = tmp_path / "libvirtd.log.1.gz"
    log.write_bytes(data[: len(data) - 20])
    proc = logsense("events", "--format", "jsonl", str(log))
    assert proc.returncode == 0 and proc.stdout and "damaged compressed data" in proc.stderr
    strict = logsense("events", "--strict", "--format", "jsonl", str(log), check=False)
    assert strict.returncode == 2 and strict.stdout == proc.stdout
