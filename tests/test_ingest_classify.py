"""The classify step both modes share: one event for a message libvirtd wrote to its log and to
the journal, and the live settle buffer (an incident opens with the cause read just after its
first symptom; VMs are resolved with the links learnt meanwhile). Real lines from the lab
(fixtures/lab: libvirt 9.0, QEMU 7.2)."""

from __future__ import annotations

from datetime import timedelta

from conftest import FIXTURES, read_events

from logsense.catalogue import load_catalogue
from logsense.correlator import Correlator
from logsense.ingest.classify import Classifier, Settle
from logsense.journal import entry_record
from logsense.parsers import FileContext, LibvirtdParser, QemuLogParser

CAT = load_catalogue()
KVM = FIXTURES / "lab" / "kvm-missing" / "warn"
# lab/unreadable-image/warn: what libvirtd and QEMU wrote when QEMU could not open the disk
LIBVIRTD_LINE = ("2026-11-25 18:48:53.032+0000: 17335: error : qemuProcessReportLogError:1985 : internal error: "
                 "qemu unexpectedly closed the monitor: 2026-11-25T18:48:53.030549Z qemu-system-x86_64: -blockdev "
                 "{\"driver\":\"file\",\"filename\":\"/var/lib/libvirt/images/lab-unreadable-image.qcow2\","
                 "\"node-name\":\"libvirt-1-storage\",\"auto-read-only\":true,\"discard\":\"unmap\"}: Could not "
                 "open '/var/lib/libvirt/images/lab-unreadable-image.qcow2': Permission denied")
QEMU_LINE = ("2026-11-25T18:48:53.030549Z qemu-system-x86_64: -blockdev {\"driver\":\"file\",\"filename\":"
             "\"/var/lib/libvirt/images/lab-unreadable-image.qcow2\",\"node-name\":\"libvirt-1-storage\","
             "\"auto-read-only\":true,\"discard\":\"unmap\"}: Could not open "
             "'/var/lib/libvirt/images/lab-unreadable-image.qcow2': Permission denied")


def libvirtd(line: str, n: int = 1):
    return LibvirtdParser(FileContext("libvirtd.log", host="vm")).parse(line, n)


def journal_copy(rec, delay: timedelta = timedelta(milliseconds=1), pid: int = 17296):
    usec = int((rec.ts + delay).timestamp() * 1_000_000)
    return entry_record({"__REALTIME_TIMESTAMP": str(usec), "MESSAGE": rec.message, "_PID": str(pid),
                         "PRIORITY": "3", "_HOSTNAME": "vm", "SYSLOG_IDENTIFIER": "libvirtd",
                         "__CURSOR": "s=1;i=1"}, None, None)


def test_a_message_in_libvirtd_log_and_in_the_journal_is_one_event() -> None:
    core = Classifier(CAT)
    rec = libvirtd(LIBVIRTD_LINE)
    assert core.take(rec) is not None
    assert core.take(journal_copy(rec)) is None  # libvirtd's thread id and process id differ: still a copy
    assert core.duplicates.dropped == 1


def test_the_same_text_seconds_apart_is_two_events() -> None:
    core = Classifier(CAT)
    rec = libvirtd(LIBVIRTD_LINE)
    core.take(rec)
    assert core.take(journal_copy(rec, delay=timedelta(seconds=3))) is not None


def test_repeats_within_one_file_are_kept_and_each_cancels_one_journal_copy() -> None:
    """kvm-missing: libvirtd reported `Unable to open /dev/kvm` three times within 50 ms, in
    libvirtd.log and in the journal: three events, not one and not six."""
    evs, run = read_events([KVM])
    kvm = [e for e in evs if e.record.message == "Unable to open /dev/kvm: No such file or directory"]
    assert [e.record.source for e in kvm] == ["libvirtd"] * 3
    assert run.stats["duplicates"] >= 3


def test_an_incident_opens_with_the_cause_read_just_after_its_symptom() -> None:
    """libvirtd.log is read first (the symptom), the QEMU log a moment later (the cause,
    stamped before it): held for the settle time, both reach the correlator together."""
    core = Classifier(CAT)
    settle = Settle(core, 1.5)
    symptom = core.take(libvirtd(LIBVIRTD_LINE))
    qemu_ctx = FileContext("/var/log/libvirt/qemu/lab-unreadable-image.log", host="vm",
                           vm="lab-unreadable-image")
    cause = core.take(QemuLogParser(qemu_ctx).parse(QEMU_LINE, 35))
    settle.add([symptom], now=0.0)
    settle.add([cause], now=0.4)
    assert settle.release(now=1.0) == []
    out = settle.release(now=1.5)
    assert [e.record.source for e in out] == ["qemu", "libvirtd"]  # time order: the cause first
    assert settle.held == []
    corr = Correlator()
    first = [inc.to_dict() for ev in out for inc in corr.feed(ev)]
    assert first[0]["status"] == "open" and first[0]["root_cause"] == cause.pattern_id
    assert "cause not in the logs" not in first[0]["title"]


def test_a_later_stamped_event_waits_its_own_settle_time() -> None:
    core = Classifier(CAT)
    settle = Settle(core, 1.5)
    first = core.take(libvirtd(LIBVIRTD_LINE))
    later = libvirtd(LIBVIRTD_LINE.replace("18:48:53.032", "18:48:59.000"), 2)
    settle.add([first], now=0.0)
    settle.add([core.take(later)], now=1.0)
    assert len(settle.release(now=1.5)) == 1 and settle.due() == 2.5
    assert len(settle.release(now=0.0, force=True)) == 1  # end of input: everything


def test_a_vm_link_learnt_while_the_event_settles_gives_it_its_vm() -> None:
    """The libvirtd error names only the disk; the QEMU command line naming that disk's VM is
    read after it."""
    core = Classifier(CAT)
    settle = Settle(core, 1.5)
    ev = core.take(libvirtd(LIBVIRTD_LINE))
    settle.add([ev], now=0.0)
    qemu = QemuLogParser(FileContext("/var/log/libvirt/qemu/lab-unreadable-image.log", host="vm",
                                     vm="lab-unreadable-image"))
    qemu.parse("-name guest=lab-unreadable-image,debug-threads=on \\", 10)
    cmd = qemu.parse("-blockdev '{\"driver\":\"file\",\"filename\":\"/var/lib/libvirt/images/"
                     "lab-unreadable-image.qcow2\",\"node-name\":\"libvirt-1-storage\"}'", 11)
    assert cmd is not None and cmd.extra["disks"] == ["/var/lib/libvirt/images/lab-unreadable-image.qcow2"]
    core.take(cmd)
    assert [e.vm for e in settle.release(now=1.5)] == ["lab-unreadable-image"]
