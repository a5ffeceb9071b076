"""Pasted console text (virsh errors, virt-manager dialogs, CI output) is read, untimed when it
carries no time, and its incidents say the time is unknown. Lines from fixtures/real/."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import FIXTURES, logsense, read_events

from logsense.correlator import correlate
from logsense.parsers import ConsoleParser, FileContext, unwrap_console_message

REAL = FIXTURES / "real"


def feed(lines: list[str]):
    p = ConsoleParser(FileContext(file="virsh.txt"))
    out = [r for n, line in enumerate(lines, 1) for r in p.feed(line, n)]
    return out + p.flush()


def test_virsh_errors_become_untimed_records_with_the_wrappers_taken_off():
    recs = feed(["error: Failed to start domain alma-8-hello",
                 "error: internal error: qemu unexpectedly closed the monitor: qemu-system-x86_64: x"])
    assert [r.message for r in recs] == ["Failed to start domain alma-8-hello",
                                         "internal error: qemu unexpectedly closed the monitor: qemu-system-x86_64: x"]
    assert all(r.untimed and r.level == "error" for r in recs)


def test_binding_errors_and_container_prefixes_are_unwrapped():
    # minishift-ocp-pcram-enomem-1 and virtlet-no-default-pool-1
    assert unwrap_console_message(
        "(openshift) Failed to start: virError(Code=1, Domain=10, Message='internal error: process exited while "
        "connecting to monitor: qemu-system-x86_64: cannot set up guest memory 'pc.ram': Cannot allocate memory')"
    ) == ("internal error: process exited while connecting to monitor: qemu-system-x86_64: cannot set up guest "
          "memory 'pc.ram': Cannot allocate memory")
    recs = feed(["libvirt_1  | libvirt: Storage Driver error : Storage pool not found: no storage pool with "
                 "matching name 'default'"])
    assert recs[0].message == "Storage pool not found: no storage pool with matching name 'default'"


def test_escaped_newlines_split_one_pasted_line_into_records():
    line = ("FAIL: Expect 'x' in 'VM 'avocado-vt-vm1' failed to start: setlocale: No such file or directory"
            "\\nerror: Failed to start domain 'avocado-vt-vm1'\\nerror: Invalid value '1-2' for 'cpuset.mems'")
    assert [r.message for r in feed([line])][1:] == ["Failed to start domain 'avocado-vt-vm1'",
                                                     "Invalid value '1-2' for 'cpuset.mems'"]


def test_untimed_lines_take_the_time_of_a_stamped_line_of_the_paste():
    recs = feed(["error: Failed to start domain mail",
                 "2019-06-16T04:50:53.161065Z qemu-system-x86_64: load of migration failed: Invalid argument"])
    assert [r.untimed for r in recs] == [False, False]
    assert recs[0].ts == recs[1].ts and recs[0].ts.year == 2019
    assert recs[1].source == "qemu"


def test_a_paste_without_time_gives_an_incident_whose_time_is_unknown(tmp_path: Path):
    paste = REAL / "macos-kvm-esp-perm-64055-1" / "virsh.txt"
    evs, _ = read_events([paste])
    incs = [i.to_dict() for i in correlate(evs)]
    assert [i["category"] for i in incs] == ["permission"]
    assert incs[0]["time_known"] is False
    assert incs[0]["evidence"][0]["time_known"] is False
    text = logsense("analyze", "--tz", "UTC", "--format", "text", str(paste)).stdout
    assert "time unknown" in text
    for fmt in ("markdown", "html", "record"):
        out = logsense("analyze", "--tz", "UTC", "--format", fmt, str(paste)).stdout
        assert "time unknown" in out and "1970" not in out, fmt


def test_timed_logs_keep_their_time_known():
    report = json.loads(logsense("analyze", "--tz", "UTC", "--format", "json",
                                 str(REAL / "qubinode-enospc-paused-1")).stdout)
    assert report["incidents"] and all(i["time_known"] for i in report["incidents"])


def test_a_walked_folder_does_not_read_its_notes_as_logs(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("error: Failed to start domain x\nPermission denied\n")
    evs, run = read_events([tmp_path])
    assert run.stats["files_read"] == 0 and evs == []


def test_a_pasted_journal_tag_is_taken_off_the_message():
    # b-dnsmasq-dmidecode-missing-armbian-zh: journal lines pasted without their time and host
    recs = feed(["libvirtd[914]: Cannot find 'dmidecode' in path: No such file or directory"])
    assert recs[0].message == "Cannot find 'dmidecode' in path: No such file or directory"


def test_a_named_text_without_a_word_of_trouble_is_not_read(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("remember to rotate the keys\n")
    proc = logsense("analyze", str(tmp_path / "notes.txt"), check=False)
    assert proc.returncode == 3 and "not a log format" in proc.stderr
