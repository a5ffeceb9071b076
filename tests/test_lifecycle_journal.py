"""Journal boot ids as host boots: a change of _BOOT_ID in a host's journal is a boot (journalctl's
own `-- Boot ID --` line, at the new boot's first entry), in binary journal files, `journalctl -o
export` and `-o json`, and the live journal; with the kernel's `Linux version` line of the same
boot (in the journal or in syslog) it is one boot, not two. Real journal files, written by
systemd-journal-remote from export-format text, as in tests/test_journal.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import logsense
from test_daemon_helpers import Watch
from test_lifecycle_daemon import wait_for_state

JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"
BOOT_A, BOOT_B = "5b1c7d2a4e6f4a0b9c8d7e6f5a4b3c2d", "9e8d7c6b5a4f4e3d8c2b1a0f9e8d7c6b"
MACHINE = "0123456789abcdef0123456789abcdef"
KERNEL = ("Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, "
          "GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)")
# (boot, time, program, message): web01, db01 and app01 run in the first boot; the host reboots;
# only web01 is started again (messages of systemd-machined, systemd-logind, the kernel, as the
# lifecycle fixtures have them from Debian 12 hosts)
ENTRIES = [
    (BOOT_A, "08:00:00", "kernel", KERNEL),
    (BOOT_A, "08:01:00", "systemd-machined", "New machine qemu-1-web01."),
    (BOOT_A, "08:01:05", "systemd-machined", "New machine qemu-2-db01."),
    (BOOT_A, "08:01:10", "systemd-machined", "New machine qemu-3-app01."),
    (BOOT_A, "10:14:00", "systemd-logind", "System is rebooting."),
    (BOOT_B, "10:15:40", "kernel", KERNEL),
    (BOOT_B, "10:15:40", "systemd-journald", "Journal started"),
    (BOOT_B, "10:16:10", "systemd-machined", "New machine qemu-1-web01."),
    (BOOT_B, "10:20:00", "systemd", "Started session-3.scope - Session 3 of User root."),
]
BOOT_B_AT = "2024-03-05T10:15:40.000000+00:00"


def usec(hms: str) -> int:
    h, m, s = map(int, hms.split(":"))
    return 1709596800000000 + (h * 3600 + m * 60 + s) * 1000000  # 2024-03-05 00:00 UTC


def export_text(entries) -> str:
    out = []
    for n, (boot, hms, prog, msg) in enumerate(entries, 1):
        transport = "kernel" if prog == "kernel" else "syslog"
        out.append(f"__CURSOR=s=0;i={n}\n__REALTIME_TIMESTAMP={usec(hms)}\n__MONOTONIC_TIMESTAMP={n}\n"
                   f"_BOOT_ID={boot}\n_MACHINE_ID={MACHINE}\n_HOSTNAME=kvm01\n_TRANSPORT={transport}\n"
                   f"SYSLOG_IDENTIFIER={prog}\nPRIORITY=6\nMESSAGE={msg}\n\n")
    return "".join(out)


def write_journal(directory: Path, entries, work: Path) -> Path:
    """A real journal file (systemd-journal-remote) under DIRECTORY/var/log/journal/MACHINE."""
    if not Path(JOURNAL_REMOTE).exists():
        pytest.fail("systemd-journal-remote is not installed (bash dev.sh test installs it)")
    export = work / f"entries-{len(list(work.glob('entries-*')))}.export"
    export.write_text(export_text(entries))
    jdir = directory / "var" / "log" / "journal" / MACHINE
    jdir.mkdir(parents=True, exist_ok=True)
    subprocess.run([JOURNAL_REMOTE, "-o", str(jdir / "system.journal"), str(export)], check=True,
                   capture_output=True)
    return jdir / "system.journal"


def vms_json(*paths: Path) -> dict:
    return json.loads(logsense("vms", *map(str, paths), "--format", "json").stdout)


def reboot_incidents(*paths: Path) -> list[dict]:
    incs = json.loads(logsense("analyze", *map(str, paths), "--format", "json").stdout)["incidents"]
    return [i for i in incs if i["scope"] == "host" and "rebooted" in i["title"]]


def boots(data: dict) -> list[str]:
    return [m["ts"] for m in data["host_events"] if m["kind"] == "boot"]


@pytest.mark.parametrize("kernel_lines", [True, False], ids=["with-kernel-lines", "boot-ids-only"])
def test_a_new_boot_id_is_a_boot_and_the_vms_not_started_again_an_incident(tmp_path: Path, kernel_lines: bool):
    """Without the kernel's lines, the change of boot id alone marks the second boot (the first
    boot id is no change: a journal may begin anywhere); with them, the boot id and the kernel
    line of the same boot are one boot."""
    entries = [e for e in ENTRIES if kernel_lines or e[2] != "kernel"]
    write_journal(tmp_path / "host", entries, tmp_path)
    data = vms_json(tmp_path / "host")
    first = ["2024-03-05T08:00:00.000000+00:00"] if kernel_lines else []
    assert boots(data) == [*first, BOOT_B_AT]
    vms = {v["vm"]: v for v in data["vms"]}
    assert {vm: (v["state"], v["last_stop_reason"]) for vm, v in vms.items()} == {
        "web01": ("running", "host-down"), "db01": ("shut off", "host-down"), "app01": ("shut off", "host-down")}
    assert vms["web01"]["last_start_reason"] == "autostart"
    (reboot,) = reboot_incidents(tmp_path / "host")
    assert reboot["affected_vms"] == ["app01", "db01"]
    assert reboot["title"] == ("host kvm01 rebooted at 2024-03-05T10:15:40+00:00; app01, db01 were running before "
                               "and were not started again")
    assert reboot["first_seen"].startswith("2024-03-05T10:14:00")  # System is rebooting.


def test_journal_export_and_json_give_the_same_boots(tmp_path: Path):
    jfile = write_journal(tmp_path / "host", [e for e in ENTRIES if e[2] != "kernel"], tmp_path)
    for fmt in ("export", "json"):
        out = subprocess.run(["journalctl", "--file", str(jfile), "-o", fmt], capture_output=True, check=True)
        (tmp_path / f"journal.{fmt}").write_bytes(out.stdout)
        data = vms_json(tmp_path / f"journal.{fmt}")
        assert boots(data) == [BOOT_B_AT], fmt
        assert [i["affected_vms"] for i in reboot_incidents(tmp_path / f"journal.{fmt}")] == [["app01", "db01"]]


def test_the_same_boot_in_the_journal_and_in_syslog_is_one_boot(tmp_path: Path):
    """The kernel's line in /var/log/syslog too (no boot id there, a second's precision): one boot."""
    write_journal(tmp_path / "host", ENTRIES, tmp_path)
    syslog = tmp_path / "host" / "var" / "log" / "syslog"
    syslog.write_text(f"2024-03-05T10:15:40+00:00 kvm01 kernel: [    0.000000] {KERNEL}\n")
    assert boots(vms_json(tmp_path / "host")) == ["2024-03-05T08:00:00.000000+00:00", BOOT_B_AT]
    assert len(reboot_incidents(tmp_path / "host")) == 1


def test_the_daemon_sees_the_boot_id_change_across_its_own_restart(tmp_path: Path):
    """`logsense watch` follows the journal: it reads the first boot and is stopped; the host
    reboots; restarted at its saved cursor, it knows the boot it read last, so the new boot id is
    a boot (no kernel line here), and the reboot incident opens when the grace period ends (32 s:
    web01 was started 30 s after the boot, db01 and app01 were not)."""
    (tmp_path / "log").mkdir()
    journal = tmp_path / "host"
    write_journal(journal, [e for e in ENTRIES if e[0] == BOOT_A and e[2] != "kernel"], tmp_path)
    jdir = journal / "var" / "log" / "journal" / MACHINE
    args = [str(tmp_path / "log"), "--state-dir", str(tmp_path / "state"), "--host", "kvm01",
            "--journal-dir", str(jdir), "--reboot-grace", "32", "--settle", "0"]
    first = Watch(*args, "--from-start").ready()
    wait_for_state(tmp_path / "state" / "state.json",
                   lambda s: s["journal"].get("cursor") and len(s["lifecycle"]["open"]) == 3)
    assert first.stop() == 0
    assert not first.out
    write_journal(journal, [e for e in ENTRIES if e[0] == BOOT_B and e[2] != "kernel"], tmp_path)
    second = Watch(*args).ready()
    reboot = second.wait(lambda o: "rebooted" in o.get("title", ""), timeout=20)
    assert second.stop() == 0
    assert reboot["affected_vms"] == ["app01", "db01"] and reboot["root_cause"] == "host.host.journal-boot"
    assert reboot["title"].startswith("host kvm01 rebooted at 2024-03-05T10:15:40+00:00")
