"""Each format's records carry the right time, host, source, pid, level and VM."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from conftest import read_events

from logsense.parsers import FileContext, LibvirtdParser, QemuLogParser, SyslogParser, detect_format


def by_line(evs, name):
    return {e.record.line: e.record for e in evs if e.record.file and e.record.file.endswith(name)}


def test_libvirtd_line_fields(formats_tree):
    evs, _ = read_events([formats_tree], all_lines=True)
    recs = by_line(evs, "libvirtd.log")
    r = recs[3]
    assert r.ts == datetime(2024, 3, 5, 10, 15, 1, 498000, tzinfo=UTC)
    assert (r.pid, r.level, r.source) == (1467, "error", "libvirtd")
    assert r.extra["function"] == "qemuMonitorIO"
    assert r.message == "internal error: End of file from monitor"
    assert r.host == "kvm01"  # from the tree's hostname file


def test_libvirtd_continuation_lines_take_their_header(formats_tree):
    evs, _ = read_events([formats_tree], all_lines=True)
    recs = by_line(evs, "libvirtd.log")
    cont = recs[8]
    assert cont.message.strip() == '"id": "libvirt-1"'
    assert cont.ts == datetime(2024, 3, 5, 10, 21, 5, 3000, tzinfo=UTC)
    assert (cont.pid, cont.level) == (1465, "debug")


def test_qemu_log_vm_command_line_and_untimestamped_lines(formats_tree):
    evs, _ = read_events([formats_tree], all_lines=True)
    recs = by_line(evs, "web01.log")
    header = recs[1]
    assert header.vm == "web01" and header.extra["hostname"] == "kvm01"
    cmd = recs[2]  # 30 continuation lines read as one record
    assert cmd.extra["guest"] == "web01"
    assert cmd.extra["uuid"] == "0d2bc6a8-0c0c-4a5e-9d2a-1c2f3e4d5a6b"
    assert cmd.extra["disks"] == ["/var/lib/libvirt/images/web01.qcow2"]
    assert 3 not in recs  # continuation lines are not records of their own
    stamped = next(r for r in recs.values() if "CPUID" in r.message)
    assert stamped.ts == datetime(2024, 3, 5, 10, 11, 13, 123456, tzinfo=UTC)
    bare = next(r for r in recs.values() if r.message.startswith("qemu-system-x86_64: terminating"))
    assert bare.ts == stamped.ts  # no stamp of its own: the last one seen
    assert bare.level == "error" and bare.vm == "web01"
    down = next(r for r in recs.values() if "shutting down" in r.message)
    assert down.message == "shutting down, reason=crashed"
    assert down.ts == datetime(2024, 3, 5, 10, 15, 1, 501000, tzinfo=UTC)


def test_syslog_new_year_rollover_from_mtime(formats_tree):
    messages = formats_tree / "var/log/messages"
    os.utime(messages, (datetime(2025, 1, 1, 0, 10, tzinfo=UTC).timestamp(),) * 2)
    evs, run = read_events([messages], all_lines=True)
    recs = by_line(evs, "messages")
    assert recs[1].ts.year == 2024 and recs[1].ts.month == 12
    assert recs[3].ts == datetime(2025, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert recs[3].extra["uptime"] == 86401.000001
    assert recs[3].message.startswith("Out of memory: Killed process 28932")
    assert (recs[4].pid, recs[4].extra["program"], recs[4].host) == (1432, "libvirtd", "kvm01")
    assert not recs[5].parsed and run.stats["unparsed_lines"] == 1


def test_year_option_overrides_mtime(formats_tree):
    evs, _ = read_events([formats_tree / "var/log/messages"], all_lines=True, year=2019)
    recs = by_line(evs, "messages")
    assert recs[3].ts.year == 2019 and recs[1].ts.year == 2019


def test_syslog_local_time_zone():
    ctx = FileContext("m", tz=ZoneInfo("Europe/Berlin"), year=2024, month=12)
    rec = SyslogParser(ctx).parse("Jul 14 12:00:00 kvm01 libvirtd[9]: x", 1)
    assert rec.ts == datetime(2024, 7, 14, 10, 0, tzinfo=UTC)  # CEST is UTC+2
    rec = SyslogParser(ctx).parse("Jan 14 12:00:00 kvm01 libvirtd[9]: x", 1)
    assert rec.ts == datetime(2024, 1, 14, 11, 0, tzinfo=UTC)  # CET is UTC+1


def test_syslog_iso_rfc5424_and_dmesg_t():
    p = SyslogParser(FileContext("m", tz=UTC, year=2024))
    iso = p.parse("2024-03-05T10:11:12.345678+01:00 kvm01 kernel: [  12.5] kvm: disabled by bios", 1)
    assert iso.ts == datetime(2024, 3, 5, 9, 11, 12, 345678, tzinfo=UTC)
    assert (iso.host, iso.message, iso.extra["uptime"]) == ("kvm01", "kvm: disabled by bios", 12.5)
    r5424 = p.parse("<30>1 2024-03-05T10:11:12.000Z kvm01 libvirtd 1432 - - internal error: x", 2)
    assert (r5424.host, r5424.pid, r5424.message) == ("kvm01", 1432, "internal error: x")
    dm = p.parse("[Tue Mar  5 10:11:12 2024] kvm: disabled by bios", 3)
    assert dm.ts == datetime(2024, 3, 5, 10, 11, 12, tzinfo=UTC) and dm.message == "kvm: disabled by bios"


def test_libvirtd_lines_forwarded_to_syslog_keep_level_and_function():
    p = SyslogParser(FileContext("m", tz=UTC, year=2024))
    rec = p.parse("Mar  5 10:11:12 kvm01 libvirtd[1432]: 1466: error : virStorageSourceReportBrokenChain:1283 : "
                  "Cannot access storage file '/x.img': No such file or directory", 1)
    assert (rec.level, rec.extra["function"], rec.pid) == ("error", "virStorageSourceReportBrokenChain", 1432)
    assert rec.message == "Cannot access storage file '/x.img': No such file or directory"
    plain = p.parse("Mar  5 10:11:12 kvm01 libvirtd[1432]: internal error: End of file from monitor", 2)
    assert plain.level is None and plain.message == "internal error: End of file from monitor"


def test_journalctl_short_precise_with_separators(tmp_path):
    f = tmp_path / "journalctl_--no-pager"
    f.write_text("-- Logs begin at Tue 2024-03-05 09:00:00 UTC, end at Tue 2024-03-05 11:00:00 UTC. --\n"
                 "Mar 05 10:11:12.123456 kvm01 libvirtd[1432]: internal error: End of file from monitor\n"
                 "-- Boot 5b1c7d2a4e6f4a0b9c8d7e6f5a4b3c2d --\n")
    evs, run = read_events([f], all_lines=True, year=2024)
    assert len(evs) == 1 and run.stats["unparsed_lines"] == 0
    r = evs[0].record
    assert (r.source, r.pid, r.host) == ("journal", 1432, "kvm01")
    assert r.ts == datetime(2024, 3, 5, 10, 11, 12, 123456, tzinfo=UTC)


def test_format_detection_from_content_not_name():
    assert detect_format("x/foo.txt", b"2024-03-05 10:11:12.345+0000: 1: error : f:1 : m\n") == "libvirtd"
    assert detect_format("x/foo.txt", b"Mar  5 10:11:12 h kernel: x\n") == "syslog"
    assert detect_format("var/log/libvirt/qemu/vm1.log", b"") == "qemu"
    assert detect_format("x/notes.txt", b"hello world\nnothing here\n") is None


def test_parsers_are_stateful_per_file():
    ctx = FileContext("vm.log", vm="vm1")
    q = QemuLogParser(ctx)
    assert q.parse("qemu-system-x86_64: early line", 1).parsed is False  # no time seen yet
    lp = LibvirtdParser(FileContext("l"))
    assert lp.parse("stray continuation", 1).parsed is False


def test_real_lab_output_is_parsed_field_by_field():
    """What libvirt 9.0 / QEMU 7.2 really wrote when QEMU could not read a disk image (lab/run)."""
    from conftest import FIXTURES

    evs, _ = read_events([FIXTURES / "lab" / "unreadable-image" / "warn"])
    by_source = {e.record.source: e for e in evs if "Permission denied" in e.record.message}
    lv = by_source["libvirtd"].record
    assert (lv.ts, lv.pid, lv.level, lv.extra["function"], lv.line, lv.host) == (
        datetime(2026, 11, 25, 18, 48, 53, 32000, tzinfo=UTC), 17335, "error", "qemuProcessReportLogError", 9, "vm")
    q = by_source["qemu"].record
    assert (q.ts, q.vm, q.line, q.host) == (datetime(2026, 11, 25, 18, 48, 53, 30549, tzinfo=UTC),
                                            "lab-unreadable-image", 35, "vm")
    jevs, _ = read_events([FIXTURES / "lab" / "unreadable-image" / "warn" / "var" / "log" / "journal"])
    j = next(e for e in jevs if "Permission denied" in e.record.message).record
    assert (j.ts, j.pid, j.host, j.level) == (datetime(2026, 11, 25, 18, 48, 53, 32258, tzinfo=UTC), 17296, "vm",
                                              "error")
    assert (j.extra["LIBVIRT_CODE"], j.extra["CODE_FUNC"]) == ("1", "qemuProcessReportLogError")
    assert j.cursor and j.file.endswith("unreadable-image/warn/var/log/journal/3d1219c7c4c5404aaa1f6d2a48adfda4/"
                                        "system.journal.xz")  # the file as given, not the unpacked copy
    assert "journal" not in by_source  # libvirtd wrote it to its log and to the journal: one event
    assert {e.pattern_id for e in by_source.values()} == {"qemu.permission.image-open-denied"}
