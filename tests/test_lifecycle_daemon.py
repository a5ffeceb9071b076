"""The host-reboot incident, live: the real `logsense watch` opens "host H rebooted at T; A, B were
running before and were not started again" when the boot's grace period has passed in event time,
the same incident `analyze` gives on the same files, and it survives a restart of the daemon
in between. Real lines: the lab's host-restart recording (restamped to now) and the 50-VM host of
fixtures/lifecycle/reboot-50 (as they are)."""

from __future__ import annotations

import json
import re
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import FIXTURES, logsense
from test_daemon_helpers import Watch, append, syslog_line

from logsense.i18n import t

LAB = FIXTURES / "lab" / "host-restart" / "warn" / "var" / "log"
REBOOT = FIXTURES / "lifecycle" / "reboot-50" / "kvm01"
NOT_BACK = ["vm07", "vm23", "vm41"]
SAME = ("id", "title", "affected_vms", "explanation", "category", "root_cause", "scope", "host", "severity",
        "first_seen", "last_seen", "remediation", "diagnostics", "related_incidents", "down_at", "downtime")
# the lab's stamps: libvirt's (libvirtd.log, the header of a QEMU log) and QEMU's own
LIBVIRT_TS = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})\+0000")
QEMU_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6})Z")
KERNEL_BOOT = ("[    0.000000] Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian "
               "12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 "
               "(2024-02-01)")  # fixtures/lifecycle/reboot-50's syslog, from a Debian 12 host


STARTED: list[Watch] = []


@pytest.fixture(autouse=True)
def no_daemon_left():
    """A test that fails while waiting leaves no daemon behind."""
    yield
    while STARTED:
        w = STARTED.pop()
        if w.proc.poll() is None:
            w.kill()


def watch(root: Path, *extra: str) -> Watch:
    w = Watch(str(root / "log"), "--no-journal", "--state-dir", str(root / "state"), "--host", "kvm01",
              "--tz", "UTC", *extra)
    STARTED.append(w)
    return w.ready()


def analyze(root: Path, grace: str, lang: str = "en") -> list[dict]:
    out = logsense("analyze", str(root / "log"), "--host", "kvm01", "--tz", "UTC", "--reboot-grace", grace,
                   "--format", "json", "--lang", lang).stdout
    return json.loads(out)["incidents"]


def is_reboot(o: dict) -> bool:
    return o.get("scope") == "host" and o.get("root_cause") in ("host.host.kernel-boot", "host.host.journal-boot")


def restamped(path: Path, shift: timedelta, until: datetime) -> list[tuple[datetime, str]]:
    """The lab file's lines up to `until` (lab time), each stamped `shift` later; a line without
    a stamp (a QEMU command line) keeps the time of the line before."""
    out: list[tuple[datetime, str]] = []
    ts = None
    for line in path.read_text().splitlines(keepends=True):
        if m := LIBVIRT_TS.match(line):
            ts = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
            new = ts + shift
            line = f"{new:%Y-%m-%d %H:%M:%S}.{new.microsecond // 1000:03d}" + line[m.end(1):]
        elif m := QEMU_TS.match(line):
            ts = datetime.strptime(m[1], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
            line = f"{ts + shift:%Y-%m-%dT%H:%M:%S.%f}" + line[m.end(1):]
        if ts is None or ts > until:
            break
        out.append((ts, line))
    return out


def test_vms_not_back_after_a_host_reboot_open_one_incident_when_the_grace_period_ends(tmp_path: Path):
    """The lab's host restart (libvirtd stopped, QEMU killed, libvirtd started: autostart brings
    lab-restart-auto back, fails for lab-restart-broken, ignores lab-restart-manual), its lines
    stamped now, with the host's reboot lines (`System is rebooting.`, the kernel's first line)
    where libvirtd went down and came up. 3 s of grace: the incident opens on the daemon's clock
    after the last line and names the two VMs not back; it names the failed autostart's incident
    (at once, or in an update when that incident comes after it: its cause line waits to be
    attached), and is then what `analyze --reboot-grace 3` says of the same files."""
    (tmp_path / "log" / "qemu").mkdir(parents=True)
    (tmp_path / "state").mkdir()
    w = watch(tmp_path, "--reboot-grace", "3")
    lab_last = datetime(2026, 11, 26, 15, 9, 42, 623000, tzinfo=UTC)  # the failed autostart
    shift = datetime.now(UTC) - lab_last
    files = {"libvirtd.log": LAB / "libvirt" / "libvirtd.log"}
    files |= {f"qemu/{p.name}": p for p in sorted((LAB / "libvirt" / "qemu").glob("*.log"))}
    lines = [(ts, name, line) for name, src in files.items() for ts, line in restamped(src, shift, lab_last)]
    host_lines = [(datetime(2026, 11, 26, 15, 9, 39, tzinfo=UTC), "syslog", "System is rebooting.", "systemd-logind"),
                  (datetime(2026, 11, 26, 15, 9, 40, tzinfo=UTC), "syslog", KERNEL_BOOT, "kernel")]
    # Debian 12's rsyslog writes RFC 3339 stamps, to the microsecond (a boot 2.6 s before the
    # failed autostart stays 2.6 s before it)
    lines += [(ts, name, f"{(ts + shift).isoformat(timespec='microseconds')} kvm01 {prog}: {msg}\n")
              for ts, name, msg, prog in host_lines]
    for _, name, line in sorted(lines, key=lambda x: x[0]):
        append(tmp_path / "log" / name, line)
    t_written = time.monotonic()
    opened = w.wait(is_reboot, timeout=20)
    waited = time.monotonic() - t_written
    assert (opened["status"], opened["version"]) == ("open", 1)
    reboot = w.wait(lambda o: is_reboot(o) and o.get("related_incidents"), timeout=20)
    assert reboot["id"] == opened["id"] and reboot["status"] in ("open", "updated")
    assert reboot["affected_vms"] == ["lab-restart-broken", "lab-restart-manual"]
    assert reboot["title"].startswith("host kvm01 rebooted at ")
    assert "3 VM(s) were running before; 1 were started again within 0.05 min" in reboot["explanation"]
    (failed,) = {o["id"]: o for o in w.out if o["id"] in reboot["related_incidents"]}.values()
    assert "lab-restart-broken" in failed["affected_vms"]
    assert f"lab-restart-broken was started but failed to start (incident {failed['id']})" in reboot["explanation"]
    assert waited >= 0.3  # the last line was 2.6 s after the boot: the grace ended on the daemon's clock
    assert w.stop() == 0
    assert [o["version"] for o in w.out if is_reboot(o)] == list(range(1, reboot["version"] + 1))
    batch = [i for i in analyze(tmp_path, "3") if is_reboot(i)]
    assert len(batch) == 1
    # the failed start's incident may have another id live: libvirtd.log and the VM's log stamp the
    # failure the same millisecond, and the daemon reads the two files in either order
    assert reboot["id"] == batch[0]["id"]
    assert {k: same_ids(reboot.get(k)) for k in SAME} == {k: same_ids(batch[0].get(k)) for k in SAME}


def same_ids(value):
    """Incident ids named in a value, as one placeholder."""
    return json.loads(re.sub(r"\b[0-9a-f]{16}\b", "ID", json.dumps(value)))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_50_vm_host_gives_live_what_analyze_gives(tmp_path: Path, lang: str):
    """fixtures/lifecycle/reboot-50, read from the start: 47 of 50 VMs started again 21-70 s after
    the boot, vm23's autostart failed, vm07 and vm41 not started. With 72 s of grace the incident
    opens once the daemon's clock passes 10:16:52 (event time), exactly as analyze reports it, in
    either language."""
    shutil.copytree(REBOOT, tmp_path / "log")
    (tmp_path / "state").mkdir()
    w = watch(tmp_path, "--reboot-grace", "72", "--from-start", "--lang", lang)
    reboot = w.wait(is_reboot, timeout=30)
    assert reboot["affected_vms"] == NOT_BACK and reboot["status"] == "open"
    failed = next(o for o in w.out if o.get("vm") == "vm23")
    assert reboot["related_incidents"] == [failed["id"]]
    # the failed autostart is sent again naming the reboot incident, as analyze names it
    linked = w.wait(lambda o: o.get("id") == failed["id"] and o.get("related_incidents") == [reboot["id"]],
                    timeout=10)
    assert reboot["id"] in linked["explanation"] and linked["version"] > failed["version"]
    assert w.stop() == 0
    reported = analyze(tmp_path, "72", lang)
    batch = next(i for i in reported if is_reboot(i))
    assert {k: reboot.get(k) for k in SAME} == {k: batch.get(k) for k in SAME}
    batch_failed = next(i for i in reported if i["id"] == failed["id"])
    assert batch_failed["related_incidents"] == linked["related_incidents"]
    words = t("reboot.related", lang, vm="vm23", host=reboot["host"], id=reboot["id"])
    assert words in batch_failed["explanation"] and words in linked["explanation"]
    if lang == "zh":
        assert "重启前在运行，之后未被重新启动" in reboot["title"]
        assert "virsh autostart" in " ".join(reboot["remediation"])


def split_at(src: Path, dest_a: Path, dest_b: Path, cut: str) -> None:
    """Lines stamped before `cut` (`YYYY-MM-DD HH:MM:SS`) to dest_a, the rest to dest_b; an
    unstamped line goes with the line before."""
    a, b, into = [], [], None
    for line in src.read_text().splitlines(keepends=True):
        if re.match(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d", line):
            into = a if line[:19].replace("T", " ") < cut else b
        (into if into is not None else a).append(line)
    dest_a.parent.mkdir(parents=True, exist_ok=True)
    dest_a.write_text("".join(a))
    dest_b.parent.mkdir(parents=True, exist_ok=True)
    dest_b.write_text("".join(b))


def wait_for_state(path: Path, pred, timeout: float = 15.0) -> dict:
    """The daemon's saved state once `pred` holds for it (it is written atomically)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = json.loads(path.read_text())
            if pred(state):
                return state
        except (OSError, ValueError):
            pass
        assert time.monotonic() < deadline, "the state never showed it"
        time.sleep(0.05)


def test_a_reboot_waiting_for_its_grace_period_survives_a_daemon_restart(tmp_path: Path):
    """The daemon reads the 50 VMs' starts, the shutdown and the boot, and is stopped; the VMs'
    lives are in state.json. Restarted, it reads the starts after the boot and opens the
    incident when the grace period ends: the same VMs, once."""
    before, after = tmp_path / "before", tmp_path / "after"
    for src in sorted(REBOOT.rglob("*")):
        if src.is_file():
            rel = src.relative_to(REBOOT)
            split_at(src, before / rel, after / rel, "2024-03-05 10:15:41")
    shutil.copytree(before, tmp_path / "log")
    (tmp_path / "state").mkdir()
    first = watch(tmp_path, "--reboot-grace", "80", "--from-start")
    state = wait_for_state(tmp_path / "state" / "state.json", lambda s: (s.get("lifecycle") or {}).get("reboots"))
    assert len(state["lifecycle"]["reboots"][0]["before"]) == 50
    assert first.stop() == 0
    assert not [o for o in first.out if is_reboot(o)]
    second = watch(tmp_path, "--reboot-grace", "80")
    for src in sorted(after.rglob("*")):
        if src.is_file():
            append(tmp_path / "log" / src.relative_to(after), src.read_text())
    reboot = second.wait(is_reboot, timeout=40)
    assert reboot["affected_vms"] == NOT_BACK and reboot["version"] == 1
    assert "50 VM(s) were running before; 47 were started again" in reboot["explanation"]
    assert second.stop() == 0
    assert len([o for o in second.out if is_reboot(o)]) == 1
    batch = next(i for i in analyze(tmp_path, "80") if is_reboot(i))
    assert {k: reboot.get(k) for k in ("id", "title", "affected_vms")} == \
        {k: batch.get(k) for k in ("id", "title", "affected_vms")}


def test_an_unusable_lifecycle_state_is_a_warning_and_the_rest_of_the_state_is_kept(tmp_path: Path):
    (tmp_path / "log").mkdir()
    (tmp_path / "state").mkdir()
    append(tmp_path / "log" / "syslog", syslog_line("System is rebooting.", prog="systemd-logind"))
    w = watch(tmp_path)
    assert w.stop() == 0
    path = tmp_path / "state" / "state.json"
    state = json.loads(path.read_text())
    assert state["lifecycle"]["version"] == 1
    state["lifecycle"] = {"version": 1, "runs": "not a list"}
    path.write_text(json.dumps(state))
    w = watch(tmp_path)
    append(tmp_path / "log" / "syslog", syslog_line(KERNEL_BOOT))
    assert w.stop() == 0
    assert any("lifecycle state unusable" in line for line in w.err)
    assert not any("Traceback" in line for line in w.err)
    assert json.loads(path.read_text())["files"]  # positions kept, and saved again
