"""Journal entries from real journal files (made by systemd-journal-remote), exports and JSON."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import logsense

JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"
ENTRIES = [
    {"__REALTIME_TIMESTAMP": "1709633472123456", "_HOSTNAME": "kvm01", "_PID": "1432", "PRIORITY": "3",
     "SYSLOG_IDENTIFIER": "libvirtd", "_SYSTEMD_UNIT": "libvirtd.service", "LIBVIRT_SOURCE": "util.error",
     "CODE_FUNC": "qemuMonitorIO", "LIBVIRT_CODE": "1", "MESSAGE": "internal error: End of file from monitor"},
    {"__REALTIME_TIMESTAMP": "1709633471000001", "_HOSTNAME": "kvm01", "PRIORITY": "3",
     "SYSLOG_IDENTIFIER": "kernel", "_TRANSPORT": "kernel",
     "MESSAGE": "Out of memory: Killed process 28932 (qemu-system-x86) total-vm:9012345kB, anon-rss:8123456kB, "
                "file-rss:1234kB, shmem-rss:0kB, UID:64055 pgtables:17000kB oom_score_adj:0"},
    {"__REALTIME_TIMESTAMP": "1709633473000000", "_HOSTNAME": "kvm01", "_PID": "1", "PRIORITY": "6",
     "SYSLOG_IDENTIFIER": "systemd", "MESSAGE": "Started session-3.scope - Session 3 of User root."},
]


def export_text(entries) -> str:
    out = []
    for n, e in enumerate(entries, 1):
        out.append(f"__CURSOR=s=0;i={n}\n__MONOTONIC_TIMESTAMP={n}\n_BOOT_ID=5b1c7d2a4e6f4a0b9c8d7e6f5a4b3c2d\n")
        out.extend(f"{k}={v}\n" for k, v in e.items())
        out.append("\n")
    return "".join(out)


@pytest.fixture
def journal_tree(tmp_path: Path) -> Path:
    """A /var/log/journal tree holding a real journal file."""
    if not Path(JOURNAL_REMOTE).exists():
        pytest.fail("systemd-journal-remote is not installed (bash dev.sh test installs it)")
    export = tmp_path / "entries.export"
    export.write_text(export_text(ENTRIES))
    jdir = tmp_path / "host" / "var" / "log" / "journal" / "0123456789abcdef0123456789abcdef"
    jdir.mkdir(parents=True)
    subprocess.run([JOURNAL_REMOTE, "-o", str(jdir / "system.journal"), str(export)], check=True,
                   capture_output=True)
    return tmp_path / "host"


def events_of(*args) -> list[dict]:
    proc = logsense("events", "--all", "--format", "jsonl", *args)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_binary_journal_read_back_with_cursor(journal_tree: Path):
    evs = events_of(str(journal_tree))
    assert [e["ts"] for e in evs] == ["2024-03-05T10:11:11.000001+00:00", "2024-03-05T10:11:12.123456+00:00",
                                      "2024-03-05T10:11:13.000000+00:00"]
    lv = evs[1]
    assert (lv["source"], lv["host"], lv["message"]) == ("journal", "kvm01", "internal error: End of file from monitor")
    assert lv["cursor"].startswith("s=") and ";i=" in lv["cursor"]
    assert lv["file"].endswith("system.journal")
    assert len({e["cursor"] for e in evs}) == 3


def test_journal_export_and_json_forms_agree_with_the_binary(journal_tree: Path, tmp_path: Path):
    jfile = next(journal_tree.rglob("*.journal"))
    as_json = subprocess.run(["journalctl", "--file", str(jfile), "-o", "json"], capture_output=True, check=True)
    (tmp_path / "journal.json").write_bytes(as_json.stdout)
    as_export = subprocess.run(["journalctl", "--file", str(jfile), "-o", "export"], capture_output=True,
                               check=True)
    (tmp_path / "journal.export").write_bytes(as_export.stdout)
    binary = events_of(str(journal_tree))
    for name in ("journal.json", "journal.export"):
        other = events_of(str(tmp_path / name))
        strip = ("file",)
        assert [{k: v for k, v in e.items() if k not in strip} for e in other] == \
            [{k: v for k, v in e.items() if k not in strip} for e in binary], name


def test_journal_entries_keep_libvirt_fields(journal_tree: Path):
    from logsense import journal

    recs = list(journal.read_journal_files(sorted(journal_tree.rglob("*.journal")), None))
    lv = next(r for r in recs if r.extra.get("program") == "libvirtd")
    kernel = next(r for r in recs if "Out of memory" in r.message)
    assert lv.extra["LIBVIRT_CODE"] == "1" and lv.extra["CODE_FUNC"] == "qemuMonitorIO"
    assert lv.extra["LIBVIRT_SOURCE"] == "util.error" and lv.pid == 1432 and lv.level == "error"
    assert kernel.extra["program"] == "kernel" and kernel.pid is None


def test_journalctl_binary_is_available():
    assert shutil.which("journalctl"), "journalctl is needed to make the JSON and export forms"
