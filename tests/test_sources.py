"""Every shape logs reach an analyst in: compressed, rotated, archived, damaged."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import tarfile
from pathlib import Path

import zstandard
from conftest import logsense, read_events

from logsense.sources import rotation_key

LINE = "2024-03-05 10:{m:02d}:00.000+0000: 1432: error : qemuMonitorIO:586 : internal error: End of file from monitor"


def lines(*minutes: int) -> bytes:
    return "".join(LINE.format(m=m) + "\n" for m in minutes).encode()


def test_compressed_files_are_read(tmp_path: Path):
    (tmp_path / "a.log.gz").write_bytes(gzip.compress(lines(1)))
    (tmp_path / "b.log.bz2").write_bytes(bz2.compress(lines(2)))
    (tmp_path / "c.log.xz").write_bytes(lzma.compress(lines(3)))
    (tmp_path / "d.log.zst").write_bytes(zstandard.ZstdCompressor().compress(lines(4)))
    evs, run = read_events([tmp_path], all_lines=True)
    assert sorted(e.record.ts.minute for e in evs) == [1, 2, 3, 4]
    assert run.stats["files_read"] == 4 and run.stats["lines_read"] == 4


def test_rotated_set_is_read_oldest_first(tmp_path: Path):
    log = tmp_path / "libvirt"
    log.mkdir()
    (log / "libvirtd.log.2.gz").write_bytes(gzip.compress(lines(1)))
    (log / "libvirtd.log.1").write_bytes(lines(2))
    (log / "libvirtd.log").write_bytes(lines(3))
    evs, _ = read_events([tmp_path], all_lines=True)
    assert [Path(e.record.file).name for e in evs] == ["libvirtd.log.2.gz", "libvirtd.log.1", "libvirtd.log"]
    names = ["messages", "messages-20240301", "messages-20240215.gz", "vm1.log.0", "vm1.log", "vm1.log.2"]
    assert sorted(names, key=rotation_key) == ["messages-20240215.gz", "messages-20240301", "messages",
                                                "vm1.log.2", "vm1.log.0", "vm1.log"]


def test_truncated_gzip_keeps_lines_before_the_damage(tmp_path: Path):
    data = gzip.compress(lines(*range(50)) * 20)
    (tmp_path / "libvirtd.log.1.gz").write_bytes(data[: len(data) // 2])
    evs, run = read_events([tmp_path], all_lines=True)
    assert len(evs) > 0
    assert [w for w in run.warnings if "damaged compressed data" in w and "libvirtd.log.1.gz" in w] != []
    assert len(run.warnings) == 1  # said once, not once per look at the file


def test_invalid_utf8_and_nul_bytes_do_not_stop_reading(tmp_path: Path):
    bad = lines(1) + b"2024-03-05 10:02:00.000+0000: 1: error : f:1 : bad \xff\xfe bytes \x00 here\n" + lines(3)
    (tmp_path / "libvirtd.log").write_bytes(bad)
    evs, _ = read_events([tmp_path], all_lines=True)
    assert [e.record.ts.minute for e in evs] == [1, 2, 3]
    assert "bad \ufffd\ufffd bytes  here" in evs[1].record.message


def test_monster_line_is_cut_and_counted(tmp_path: Path):
    huge = b"2024-03-05 10:02:00.000+0000: 1: error : f:1 : " + b"x" * (10 << 20) + b"\n"
    (tmp_path / "libvirtd.log").write_bytes(lines(1) + huge + lines(3))
    evs, run = read_events([tmp_path], all_lines=True)
    assert [e.record.ts.minute for e in evs] == [1, 2, 3]
    assert run.stats["long_lines"] == 1
    assert len(evs[1].record.message) <= 1 << 20


def test_only_missing_paths_is_an_input_error(tmp_path: Path):
    proc = logsense("analyze", str(tmp_path / "nope.log"), check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"logsense: error: {tmp_path / 'nope.log'}: no such file or directory"


def test_tarball_is_read_and_hostile_member_refused(tmp_path: Path):
    tar_path = tmp_path / "sos.tar.xz"
    outside = tmp_path.parent / "evil-written"
    with tarfile.open(tar_path, "w:xz") as tar:
        for name, data in (("sosreport-kvm01/var/log/libvirt/libvirtd.log", lines(5)),
                           ("sosreport-kvm01/hostname", b"kvm01\n"),
                           ("sosreport-kvm01/sos_commands/logs/journalctl_--no-pager", b""),
                           ("../../evil-written", b"pwned\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    evs, run = read_events([tar_path], all_lines=True)
    assert [e.record.ts.minute for e in evs] == [5]
    assert evs[0].record.host == "kvm01"
    assert evs[0].record.file == f"{tar_path}:sosreport-kvm01/var/log/libvirt/libvirtd.log"
    assert any("refused archive member" in w and "evil-written" in w for w in run.warnings)
    assert not outside.exists()


def test_unreadable_file_is_a_warning_and_the_rest_is_analyzed(tmp_path: Path):
    (tmp_path / "libvirtd.log").write_bytes(lines(1))
    proc = logsense("events", "--format", "jsonl", str(tmp_path / "libvirtd.log"), str(tmp_path / "missing.log"))
    assert proc.returncode == 0
    assert "missing.log: no such file or directory" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stdout.splitlines()) == 1


def test_gzip_header_mtime_gives_the_year_of_a_rotated_syslog(tmp_path: Path):
    """logrotate compresses days later: the year comes from the gzip header, not the file's mtime."""
    from datetime import UTC, datetime

    data = b"Dec 31 23:59:59 kvm01 kernel: [1.0] x\nJan  1 00:00:01 kvm01 kernel: [2.0] y\n"
    header_time = datetime(2021, 1, 1, 0, 5, tzinfo=UTC).timestamp()
    f = tmp_path / "messages-20210102.gz"
    f.write_bytes(gzip.compress(data, mtime=int(header_time)))
    os.utime(f, (datetime(2023, 6, 1, tzinfo=UTC).timestamp(),) * 2)
    evs, _ = read_events([f], all_lines=True)
    assert [e.record.ts.year for e in evs] == [2020, 2021]


def test_no_progress_bar_when_piped(tmp_path: Path):
    (tmp_path / "libvirtd.log").write_bytes(lines(1))
    proc = logsense("analyze", "--format", "json", str(tmp_path))
    assert proc.stderr == ""


def test_sosreport_tree(tmp_path: Path):
    sos = tmp_path / "sosreport-kvm01-2024-03-05-abcdef"
    (sos / "sos_commands" / "logs").mkdir(parents=True)
    (sos / "sos_commands" / "networking").mkdir(parents=True)
    (sos / "var" / "log" / "libvirt" / "qemu").mkdir(parents=True)
    (sos / "etc" / "libvirt" / "qemu").mkdir(parents=True)
    (sos / "hostname").write_text("kvm01.example.org\n")
    (sos / "sos_commands" / "networking" / "ip_-d_address").write_text("1: lo: <LOOPBACK,UP> mtu 65536\n")
    (sos / "sos_commands" / "logs" / "journalctl_--no-pager_--catalog_--boot").write_text(
        "-- Journal begins at Tue 2024-03-05 09:00:00 UTC, ends at Tue 2024-03-05 11:00:00 UTC. --\n"
        "Mar 05 10:11:12 kvm01 libvirtd[1432]: Cannot access storage file '/srv/images/web01.qcow2': "
        "No such file or directory\n")
    (sos / "var" / "log" / "libvirt" / "qemu" / "web01.log").write_text(
        "2024-03-05 10:11:12.402+0000: shutting down, reason=failed\n")
    (sos / "etc" / "libvirt" / "qemu" / "web01.xml").write_text(
        "<domain type='kvm'><name>web01</name><uuid>0d2bc6a8-0c0c-4a5e-9d2a-1c2f3e4d5a6b</uuid><devices>"
        "<disk type='file' device='disk'><source file='/srv/images/web01.qcow2'/></disk></devices></domain>")
    evs, run = read_events([sos], year=2024)
    assert run.warnings == []  # the sosreport's other command outputs are not read at all
    assert run.stats["files_read"] == 2
    journal_line = next(e for e in evs if e.record.source == "journal")
    assert (journal_line.record.host, journal_line.vm) == ("kvm01", "web01")  # vm from the domain XML's disk
    assert journal_line.pattern_id == "libvirt.disk_image.storage-file-missing"
    qemu = next(e for e in evs if e.record.source == "qemu")
    assert (qemu.record.host, qemu.vm) == ("kvm01", "web01")
