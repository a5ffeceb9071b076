"""`logsense watch`, the real daemon as a subprocess: live incidents, nothing lost, nothing
doubled, across rotations, truncations, restarts and kill -9."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import logsense, read_events
from test_daemon_helpers import (
    GUEST_RAM,
    MISSING_IMAGE,
    OOM,
    Watch,
    append,
    in_private_journald,
    libvirtd_line,
    qemu_libvirt_line,
    qemu_line,
    stop_private_journald,
    syslog_line,
)

import logsense as ls
from logsense.catalogue import load_catalogue
from logsense.correlator import Correlator
from logsense.daemon import watchdog_period
from logsense.sinks import MESSAGE_ID
from logsense.state import Relinker, event_to_json

JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """An empty /var/log/libvirt-like tree and a state directory."""
    logs = tmp_path / "log"
    (logs / "qemu").mkdir(parents=True)
    (logs / "libvirtd.log").write_text(libvirtd_line("libvirt version: 9.0.0, package: 9.0.0-4+deb12u1 (Debian)",
                                                     level="info", where="virLogVMMessage:2", pid=1432))
    (tmp_path / "state").mkdir()
    return tmp_path


def watch(host: Path, *extra: str, paths: list[Path] | None = None, **kw) -> Watch:
    args = [str(p) for p in (paths or [host / "log"])]
    return Watch(*args, "--no-journal", "--state-dir", str(host / "state"), "--host", "kvm01", "--tz", "UTC",
                 *extra, **kw).ready()


def lines_of(w: Watch) -> list[str]:
    return [o["message"] for o in w.out if "message" in o]


def test_incident_opens_within_a_second_then_resolves_as_batch_sees_it(host: Path):
    w = watch(host, "--window", "2")
    vmlog = host / "log" / "qemu" / "web01.log"
    t0 = time.monotonic()
    append(vmlog, qemu_line(GUEST_RAM))
    opened = w.wait(lambda o: o["status"] == "open")
    assert time.monotonic() - t0 < 1.0
    assert (opened["vm"], opened["root_cause"], opened["version"]) == ("web01", "qemu.memory.guest-ram-alloc-failed", 1)
    append(vmlog, qemu_libvirt_line("shutting down, reason=failed"))
    updated = w.wait(lambda o: o["status"] == "updated")
    assert (updated["id"], updated["version"]) == (opened["id"], 2)
    resolved = w.wait(lambda o: o["status"] == "resolved")
    assert resolved["id"] == opened["id"] and resolved["version"] == 3
    assert w.stop() == 0
    batch = logsense("analyze", "--format", "jsonl", "--window", "2", "--host", "kvm01", "--tz", "UTC",
                     str(host / "log"))
    final = [json.loads(line) for line in batch.stdout.splitlines()]
    assert [(i["id"], i["root_cause"], i["title"]) for i in final] == \
        [(resolved["id"], resolved["root_cause"], resolved["title"])]


def test_file_present_at_first_start_is_read_from_its_end_and_new_files_from_their_start(host: Path):
    append(host / "log" / "libvirtd.log", libvirtd_line(MISSING_IMAGE) * 3)  # old news
    w = watch(host, "--emit", "events")
    append(host / "log" / "qemu" / "new-vm.log", qemu_line(GUEST_RAM))
    ev = w.wait(lambda o: True)
    assert (ev["vm"], ev["line"], ev["pattern"]) == ("new-vm", 1, "qemu.memory.guest-ram-alloc-failed")
    append(host / "log" / "libvirtd.log", libvirtd_line(MISSING_IMAGE))
    ev = w.wait(lambda o: o["source"] == "libvirtd")
    assert ev["line"] == 5  # line numbers stay true when starting at the end
    assert w.stop() == 0
    assert len(w.out) == 2


def numbered(n0: int, n1: int) -> str:
    return "".join(libvirtd_line(f"benign seq={i}", level="info", where="virNetServerAddClient:17")
                   for i in range(n0, n1))


def seqs(w: Watch) -> list[int]:
    return [int(m.split("seq=")[1]) for m in lines_of(w) if "seq=" in m]


def test_rotations_truncation_and_partial_lines_lose_and_double_nothing(host: Path):
    log = host / "log" / "libvirtd.log"
    w = watch(host, "--emit", "events", "--all")
    append(log, numbered(0, 100))
    w.wait(lambda o: o["message"].endswith("seq=99"))
    # a line written without its newline is held until complete
    append(log, libvirtd_line("benign seq=100", level="info", where="virNetServerAddClient:17").rstrip("\n"))
    append(log, numbered(200, 200))
    append(log, "\n" + numbered(101, 150))
    w.wait(lambda o: o["message"].endswith("seq=149"))
    # rename rotation (logrotate create): the rest of the old file is read before switching
    os.rename(log, str(log) + ".1")
    append(Path(str(log) + ".1"), numbered(150, 160))
    append(log, numbered(160, 200))
    w.wait(lambda o: o["message"].endswith("seq=199"))
    # copytruncate
    shutil.copy(log, str(log) + ".2")
    with open(log, "r+") as f:
        f.truncate(0)
    append(log, numbered(200, 210))
    w.wait(lambda o: o["message"].endswith("seq=209"))
    # deleted and re-created
    log.unlink()
    append(log, numbered(210, 230))
    w.wait(lambda o: o["message"].endswith("seq=229"))
    # virtlogd: vm.log -> vm.log.0, then a new vm.log
    vm = host / "log" / "qemu" / "db01.log"
    append(vm, "".join(qemu_line(f"benign seq={i}") for i in range(230, 240)))
    w.wait(lambda o: o["message"].endswith("seq=239"))
    os.rename(vm, str(vm) + ".0")
    append(vm, "".join(qemu_line(f"benign seq={i}") for i in range(240, 250)))
    w.wait(lambda o: o["message"].endswith("seq=249"))
    assert w.stop() == 0
    assert seqs(w) == list(range(250))


def rotate_while_the_old_writer_writes_on(host: Path, w: Watch) -> tuple[Path, Path]:
    """logrotate `create`: libvirtd.log is renamed to libvirtd.log.1 and a new libvirtd.log
    created, and the daemon has switched to the new one (seq 50-59); the writer that had the
    log open writes on into the renamed file (seq 60-64) until it reopens its log."""
    log = host / "log" / "libvirtd.log"
    old = Path(str(log) + ".1")
    append(log, numbered(0, 50))
    w.wait(lambda o: o["message"].endswith("seq=49"))
    os.rename(log, old)
    append(log, numbered(50, 60))
    w.wait(lambda o: o["message"].endswith("seq=59"))
    append(old, numbered(60, 65))
    w.wait(lambda o: o["message"].endswith("seq=64"))
    return log, old


def where_read(log: Path, old: Path, read_before_rename: int) -> dict[int, tuple[str, int]]:
    """Each seq's (file, line) as the daemon names it: the name it was read under (the old
    file's first lines were read before the rename) and its line number in its file."""
    got = {}
    for path in (log, old):
        for lineno, text in enumerate(path.read_text().splitlines(), 1):
            if "seq=" in text:
                seq = int(text.split("seq=")[1])
                name = log if path == old and seq < read_before_rename else path
                got[seq] = (str(name), lineno)
    return got


def test_a_renamed_file_its_old_writer_still_writes_to_is_read_beside_the_new_one(host: Path):
    w = watch(host, "--emit", "events", "--all", env={"LOGSENSE_ROTATED_GRACE": "30"})
    log, old = rotate_while_the_old_writer_writes_on(host, w)
    n = 65
    for _ in range(8):  # both writers, interleaved
        append(old, numbered(n, n + 3))
        append(log, numbered(n + 3, n + 6))
        n += 6
    tail = libvirtd_line(f"benign seq={n}", level="info", where="virNetServerAddClient:17")
    append(old, tail[:20])  # a line the old writer has not finished is held back...
    append(log, numbered(n + 1, n + 2))
    w.wait(lambda o: o["message"].endswith(f"seq={n + 1}"))
    append(old, tail[20:])  # ...until it is
    w.wait(lambda o: o["message"].endswith(f"seq={n}"))
    n += 2
    assert w.stop() == 0
    assert sorted(seqs(w)) == list(range(n))  # every line, once
    where = where_read(log, old, 50)
    assert {int(o["message"].split("seq=")[1]): (o["file"], o["line"]) for o in w.out} == where
    assert where[60] == (str(old), 52)  # the old file's line numbers run on under its new name
    saved = json.loads((host / "state" / "state.json").read_text())["files"][str(log)]
    assert [r["offset"] for r in saved["rotated"]] == [old.stat().st_size]  # still read at the stop


def open_files(pid: int) -> set[str]:
    fds = Path(f"/proc/{pid}/fd")
    out = set()
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            out.add(os.readlink(fd))
    return out


def test_a_rotated_file_quiet_for_the_grace_period_is_let_go(host: Path):
    w = watch(host, "--emit", "events", "--all", env={"LOGSENSE_ROTATED_GRACE": "1"})
    log, old = rotate_while_the_old_writer_writes_on(host, w)
    assert str(old) in open_files(w.proc.pid)
    deadline = time.monotonic() + 5
    while str(old) in open_files(w.proc.pid):  # nothing but /proc shows the descriptor closed
        assert time.monotonic() < deadline, "the rotated file is still open"
        time.sleep(0.05)
    append(log, numbered(65, 70))
    w.wait(lambda o: o["message"].endswith("seq=69"))
    assert w.stop() == 0
    assert sorted(seqs(w)) == list(range(70))
    assert "rotated" not in json.loads((host / "state" / "state.json").read_text())["files"][str(log)]


def test_kill_9_while_a_rotated_file_is_read_loses_none_of_its_lines(host: Path):
    env = {"LOGSENSE_ROTATED_GRACE": "30"}
    state = host / "state" / "state.json"
    w = watch(host, "--emit", "events", "--all", env=env)
    log, old = rotate_while_the_old_writer_writes_on(host, w)
    deadline = time.monotonic() + 5
    while [r["offset"] for r in json.loads(state.read_text())["files"][str(log)].get("rotated", [])] != \
            [old.stat().st_size]:  # the save is the daemon's own business: its file is all there is
        assert time.monotonic() < deadline, state.read_text()
        time.sleep(0.05)
    append(old, numbered(65, 70))
    append(log, numbered(70, 75))
    w.kill()  # read or not, saved or not
    append(old, numbered(75, 80))  # while it is down
    append(log, numbered(80, 85))
    w2 = watch(host, "--emit", "events", "--all", env=env)
    append(old, numbered(85, 90))
    append(log, numbered(90, 95))
    w2.wait(lambda o: o["message"].endswith("seq=89"))
    w2.wait(lambda o: o["message"].endswith("seq=94"))
    assert w2.stop() == 0
    got = seqs(w) + seqs(w2)
    assert sorted(set(got)) == list(range(95))  # nothing lost
    repeats = [s for s, k in Counter(got).items() if k > 1]
    assert set(repeats) <= set(range(65, 75)) & set(seqs(w))  # only what the killed run had not saved
    assert len(seqs(w2)) == len(set(seqs(w2)))
    where = where_read(log, old, 50)
    assert all((o["file"], o["line"]) == where[int(o["message"].split("seq=")[1])] for o in w2.out)


def test_a_log_renamed_while_stopped_and_not_yet_created_anew_is_read_on(host: Path):
    """Stopped, then logrotate renames the log (`nocreate`: the writer creates the new one
    when it reopens): the renamed file is read on from the saved position, and the new file,
    when it appears, from its start."""
    log = host / "log" / "libvirtd.log"
    old = Path(str(log) + ".1")
    w = watch(host, "--emit", "events", "--all")
    append(log, numbered(0, 10))
    w.wait(lambda o: o["message"].endswith("seq=9"))
    assert w.stop() == 0
    os.rename(log, old)
    append(old, numbered(10, 20))
    w2 = watch(host, "--emit", "events", "--all", env={"LOGSENSE_ROTATED_GRACE": "30"})
    w2.wait(lambda o: o["message"].endswith("seq=19"))
    append(old, numbered(20, 25))
    w2.wait(lambda o: o["message"].endswith("seq=24"))
    append(log, numbered(25, 30))
    w2.wait(lambda o: o["message"].endswith("seq=29"))
    assert w2.stop() == 0
    assert seqs(w) + seqs(w2) == list(range(30))
    assert {o["file"] for o in w2.out} == {str(old), str(log)}


def test_a_directory_that_appears_later_is_followed(tmp_path: Path):
    (tmp_path / "state").mkdir()
    w = watch(tmp_path, "--emit", "events", paths=[tmp_path / "later" / "libvirt"])
    qemu_dir = tmp_path / "later" / "libvirt" / "qemu"
    qemu_dir.mkdir(parents=True)
    append(qemu_dir / "web01.log", qemu_line(GUEST_RAM))
    ev = w.wait(lambda o: True)
    assert ev["vm"] == "web01" and ev["line"] == 1
    assert w.stop() == 0


def test_clean_restart_continues_exactly_where_it_stopped(host: Path):
    log = host / "log" / "libvirtd.log"
    w = watch(host, "--emit", "events", "--all")
    append(log, numbered(0, 50))
    w.wait(lambda o: o["message"].endswith("seq=49"))
    assert w.stop() == 0
    append(log, numbered(50, 80))  # written while it was stopped
    w2 = watch(host, "--emit", "events", "--all")
    append(log, numbered(80, 100))
    w2.wait(lambda o: o["message"].endswith("seq=99"))
    assert w2.stop() == 0
    assert seqs(w) + seqs(w2) == list(range(100))


def test_kill_9_again_and_again_loses_no_line_and_repeats_only_what_was_unsaved(host: Path):
    log = host / "log" / "libvirtd.log"
    rng = random.Random(6)
    runs: list[Watch] = []
    n = 0
    for round_ in range(8):
        w = watch(host, "--emit", "events", "--all")
        runs.append(w)
        for _ in range(rng.randint(1, 4)):
            k = rng.randint(20, 400)
            append(log, numbered(n, n + k))
            n += k
            if rng.random() < 0.5:
                w.wait(lambda o, last=n - 1: o["message"].endswith(f"seq={last}"))
        if round_ == 3:  # a rotation while it was down
            os.rename(log, str(log) + ".1")
        w.kill()
        append(log, numbered(n, n + 10))
        n += 10
    w = watch(host, "--emit", "events", "--all")
    w.wait(lambda o: o["message"].endswith(f"seq={n - 1}"))
    assert w.stop() == 0
    got = [s for r in [*runs, w] for s in seqs(r)]
    assert sorted(set(got)) == list(range(n))  # nothing lost
    # what repeats is only what a killed run emitted but had not saved yet, in order
    firsts = sorted(set(got), key=got.index)
    assert firsts == list(range(n))
    # a repeat is a line a killed run emitted before it could save its position
    killed = [s for r in runs for s in seqs(r)]
    repeats = [s for s, k in Counter(got).items() if k > 1]
    assert set(repeats) <= set(killed)
    assert len(seqs(w)) == len(set(seqs(w)))  # within one run, never


def test_open_incident_survives_a_restart_and_resolves_once(host: Path):
    vmlog = host / "log" / "qemu" / "web01.log"
    w = watch(host, "--window", "3")
    append(vmlog, qemu_line(GUEST_RAM))
    opened = w.wait(lambda o: o["status"] == "open")
    assert w.stop() == 0
    w2 = watch(host, "--window", "3")
    append(vmlog, qemu_libvirt_line("shutting down, reason=failed"))
    upd = w2.wait(lambda o: o["status"] == "updated")
    assert (upd["id"], upd["version"]) == (opened["id"], 2)
    res = w2.wait(lambda o: o["status"] == "resolved")
    assert (res["id"], res["version"]) == (opened["id"], 3)
    assert w2.stop() == 0
    assert [(o["status"], o["version"]) for o in w.out + w2.out] == [("open", 1), ("updated", 2), ("resolved", 3)]


def test_after_kill_9_a_re_emitted_incident_has_the_same_id_and_version(host: Path):
    vmlog = host / "log" / "qemu" / "web01.log"
    seen: dict[tuple, dict] = {}
    for i in range(4):
        w = watch(host, "--window", "30")
        append(vmlog, qemu_line(GUEST_RAM if i % 2 == 0 else "kvm_init_vcpu failed: Cannot allocate memory"))
        w.wait(lambda o: True)
        w.kill()
        for o in w.out:
            key = (o["id"], o["version"])
            assert seen.setdefault(key, o) == o  # a repeat is the very same object
    assert [v for _, v in sorted(seen)] == list(range(1, len(seen) + 1))
    assert len({i for i, _ in seen}) == 1


def test_kernel_oom_in_syslog_makes_a_host_incident(host: Path):
    messages = host / "log" / "messages"
    messages.write_text(syslog_line("Linux version 6.1.0-18-amd64", prog="kernel"))
    w = watch(host, "--window", "30", paths=[host / "log"])
    append(messages, syslog_line(OOM))
    inc = w.wait(lambda o: o["status"] == "open")
    assert inc["category"] == "memory" and inc["host"] == "kvm01"
    assert w.stop() == 0


def test_failing_command_sink_is_retried_and_does_not_hold_up_stdout(host: Path, tmp_path: Path):
    script = tmp_path / "hook.py"
    got = tmp_path / "hook.out"
    script.write_text(
        "import sys, pathlib\n"
        f"tries = pathlib.Path({str(tmp_path / 'tries')!r})\n"
        "n = int(tries.read_text()) if tries.exists() else 0\n"
        "tries.write_text(str(n + 1))\n"
        "data = sys.stdin.read()\n"
        "if n < 2:\n    sys.exit(3)\n"
        f"open({str(got)!r}, 'a').write(data)\n")
    import sys

    out_file = tmp_path / "incidents.jsonl"
    w = watch(host, "--window", "30", "--sink", "stdout", "--sink", f"file:{out_file}",
              "--sink", f"command:{sys.executable} {script}")
    append(host / "log" / "qemu" / "web01.log", qemu_line(GUEST_RAM))
    inc = w.wait(lambda o: o["status"] == "open")
    w.wait_err(lambda line: "sink command:" in line and "retrying" in line)
    deadline = time.monotonic() + 10
    while not (got.exists() and got.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)  # the hook is another process: its file is all there is to watch
    assert json.loads(got.read_text())["id"] == inc["id"]
    assert [json.loads(x)["id"] for x in out_file.read_text().splitlines()] == [inc["id"]]
    assert w.stop() == 0


def test_sighup_with_a_broken_catalogue_keeps_the_old_one(host: Path, tmp_path: Path):
    site = tmp_path / "site-patterns"
    site.mkdir()
    (site / "site.toml").write_text("")
    w = watch(host, "--window", "30", "--catalogue", str(site))
    (site / "site.toml").write_text("[[pattern]]\nid = 'broken'\nregex = '('\n")
    w.proc.send_signal(signal.SIGHUP)
    line = w.wait_err(lambda line: "catalogue reload failed" in line)
    assert "keeping the old one" in line
    append(host / "log" / "qemu" / "web01.log", qemu_line(GUEST_RAM))
    assert w.wait(lambda o: o["status"] == "open")["root_cause"] == "qemu.memory.guest-ram-alloc-failed"
    assert w.stop() == 0


class NotifySocket:
    """The NOTIFY_SOCKET systemd gives a Type=notify service: a datagram socket, each message
    one datagram of NAME=value lines."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.got: list[tuple[float, str]] = []  # (monotonic time of arrival, message)

    def wait(self, pred, timeout: float = 15.0) -> tuple[float, str]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no such notification; got {[m for _, m in self.got]}")
            self.sock.settimeout(left)
            try:
                msg = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            self.got.append((time.monotonic(), msg))
            if pred(msg):
                return self.got[-1]

    def close(self) -> None:
        self.sock.close()


def test_sd_notify_ready_watchdog_and_status_over_the_real_socket(host: Path, tmp_path: Path):
    notify = NotifySocket(tmp_path / "notify.sock")
    w = watch(host, "--window", "30", env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"})
    ready_at, ready = notify.wait(lambda m: "READY=1" in m)
    assert "STATUS=watching 1 files" in ready
    # WATCHDOG=1 within every period (1 s), again and again
    then = ready_at
    for _ in range(3):
        at, _ = notify.wait(lambda m: m == "WATCHDOG=1", timeout=2.0)
        assert at - then < 1.0
        then = at
    append(host / "log" / "qemu" / "web01.log", qemu_line(GUEST_RAM))
    w.wait(lambda o: o["status"] == "open")
    _, status = notify.wait(lambda m: m.startswith("STATUS=") and "1 open incident(s)" in m, timeout=3.0)
    assert re.fullmatch(r"STATUS=\d+ lines/s, 1 open incident\(s\), 2 files", status)
    assert w.stop() == 0
    notify.close()


def test_watchdog_period_is_read_as_sd_watchdog_enabled_reads_it(monkeypatch):
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert watchdog_period() == 0.0
    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    assert watchdog_period() == 3.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_period() == 3.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # meant for another process
    assert watchdog_period() == 0.0
    monkeypatch.setenv("WATCHDOG_USEC", "soon")
    assert watchdog_period() == 0.0


def test_unusable_state_is_a_warning_not_a_crash(host: Path):
    (host / "state" / "state.json").write_text("{not json")
    w = watch(host, "--emit", "events")
    assert any("not valid JSON" in line for line in w.err)
    append(host / "log" / "qemu" / "web01.log", qemu_line(GUEST_RAM))
    w.wait(lambda o: True)
    assert w.stop() == 0
    state = json.loads((host / "state" / "state.json").read_text())
    state["version"] = 0
    state["catalogue"] = "another"
    (host / "state" / "state.json").write_text(json.dumps(state))
    w = watch(host, "--emit", "events")
    assert any("state version 0" in line for line in w.err)
    assert w.stop() == 0


def export_entries(start: int, n: int, base_usec: int = 1709633472000000) -> str:
    out = []
    for i in range(start, start + n):
        out.append(f"__CURSOR=s=0;i={i}\n__REALTIME_TIMESTAMP={base_usec + i * 1000000}\n"
                   f"__MONOTONIC_TIMESTAMP={i}\n_BOOT_ID=5b1c7d2a4e6f4a0b9c8d7e6f5a4b3c2d\n_HOSTNAME=kvm01\n"
                   "PRIORITY=3\nSYSLOG_IDENTIFIER=libvirtd\n_SYSTEMD_UNIT=libvirtd.service\n"
                   f"MESSAGE=internal error: End of file from monitor seq={i}\n\n")
        out.append(f"__CURSOR=s=0;i={i}x\n__REALTIME_TIMESTAMP={base_usec + i * 1000000 + 1}\n"
                   f"__MONOTONIC_TIMESTAMP={i}\n_BOOT_ID=5b1c7d2a4e6f4a0b9c8d7e6f5a4b3c2d\n_HOSTNAME=kvm01\n"
                   "PRIORITY=6\nSYSLOG_IDENTIFIER=sshd\n"
                   f"MESSAGE=Accepted publickey for root seq={i}\n\n")
    return "".join(out)


def add_journal(jdir: Path, tmp_path: Path, start: int, n: int, base_usec: int = 1709633472000000) -> None:
    export = tmp_path / f"export-{start}.txt"
    export.write_text(export_entries(start, n, base_usec))
    subprocess.run([JOURNAL_REMOTE, "-o", str(jdir / "x.journal"), str(export)], check=True, capture_output=True)


def test_journal_is_followed_filtered_and_resumed_at_its_cursor(host: Path, tmp_path: Path):
    if not Path(JOURNAL_REMOTE).exists():
        pytest.fail("systemd-journal-remote is not installed (bash dev.sh test installs it)")
    jdir = tmp_path / "journal"
    jdir.mkdir()
    add_journal(jdir, tmp_path, 0, 5)
    args = ["--from-start", "--emit", "events", "--journal-dir", str(jdir)]
    w = Watch(str(host / "log"), "--state-dir", str(host / "state"), "--host", "kvm01", *args).ready()
    assert "and the journal" in w.err[-1]
    w.wait(lambda o: o["message"].endswith("seq=4"))
    add_journal(jdir, tmp_path, 5, 3)  # while it runs
    w.wait(lambda o: o["message"].endswith("seq=7"))
    assert w.stop() == 0
    add_journal(jdir, tmp_path, 8, 2)  # while it is stopped
    w2 = Watch(str(host / "log"), "--state-dir", str(host / "state"), "--host", "kvm01", *args).ready()
    w2.wait(lambda o: o["message"].endswith("seq=9"))
    assert w2.stop() == 0
    journal = [o for o in w.out + w2.out if o["source"] == "journal"]  # not the libvirtd.log start line
    got = [o["message"] for o in journal]
    assert got == [f"internal error: End of file from monitor seq={i}" for i in range(10)]  # sshd filtered out
    assert all(o["cursor"] for o in journal)


@pytest.mark.parametrize("first_run", ["--no-journal", "a quiet journal"])
def test_journal_without_a_saved_cursor_is_read_from_the_last_save(host: Path, tmp_path: Path, first_run: str):
    """State but no cursor (the journal was not followed, or nothing new came): what was
    written while the daemon was stopped is read, what came before the last save is not."""
    if not Path(JOURNAL_REMOTE).exists():
        pytest.fail("systemd-journal-remote is not installed (bash dev.sh test installs it)")
    jdir = tmp_path / "journal"
    jdir.mkdir()
    add_journal(jdir, tmp_path, 0, 3, base_usec=int((time.time() - 600) * 1e6))  # before the first run
    common = [str(host / "log"), "--state-dir", str(host / "state"), "--host", "kvm01", "--emit", "events"]
    first = ["--no-journal"] if first_run == "--no-journal" else ["--journal-dir", str(jdir)]
    w = Watch(*common, *first).ready()
    assert w.stop() == 0
    assert "cursor" not in json.loads((host / "state" / "state.json").read_text())["journal"]
    add_journal(jdir, tmp_path, 3, 2, base_usec=int(time.time() * 1e6) - 3 * 1000000)  # while it was stopped
    w2 = Watch(*common, "--journal-dir", str(jdir)).ready()
    w2.wait(lambda o: o["message"].endswith("seq=4"))
    assert w2.stop() == 0
    assert [o["message"] for o in w.out + w2.out] == \
        [f"internal error: End of file from monitor seq={i}" for i in (3, 4)]


def test_sighup_reloads_the_paths_and_the_window_from_the_config(host: Path, tmp_path: Path):
    more = tmp_path / "more"  # a second libvirt log tree, added to the config while running
    (more / "qemu").mkdir(parents=True)
    append(more / "qemu" / "db01.log", qemu_line(GUEST_RAM))  # there before it is configured: old news
    config = tmp_path / "logsense.toml"
    config.write_text(f"paths = [{str(host / 'log')!r}]\nwindow = 300\n")
    w = Watch("--config", str(config), "--no-journal", "--state-dir", str(host / "state"), "--host", "kvm01",
              "--tz", "UTC").ready()
    assert w.err[-1] == "logsense: watching 1 files"
    config.write_text(f"paths = [{str(host / 'log')!r}, {str(more)!r}]\nwindow = 1\n")
    w.proc.send_signal(signal.SIGHUP)
    assert w.wait_err(lambda line: "reloaded" in line).endswith("watching 2 files")
    append(more / "qemu" / "db01.log", qemu_line(GUEST_RAM))
    opened = w.wait(lambda o: o["status"] == "open")
    assert (opened["vm"], opened["root_cause"]) == ("db01", "qemu.memory.guest-ram-alloc-failed")
    assert [(e["line"], e["count"]) for e in opened["evidence"]] == [(2, 1)]  # the new line alone
    resolved = w.wait(lambda o: o["status"] == "resolved", timeout=5.0)  # window 1 s, not 300
    assert resolved["id"] == opened["id"]
    assert w.stop() == 0
    assert {o["vm"] for o in w.out} == {"db01"} and len(w.out) == 2


def test_a_correlator_restored_from_its_state_emits_what_it_would_have(tmp_path: Path):
    """Stopped after any event and restored from its saved state (through JSON, as on disk),
    the correlator emits exactly what one uninterrupted run emits."""
    events, _ = read_events([ls.SAMPLE])
    cat = load_catalogue([])

    def emitted(c: Correlator, evs) -> list[dict]:
        out = [inc.to_dict() for ev in evs for inc in c.feed(ev)]
        return out

    whole = emitted(c := Correlator(60), events) + [i.to_dict() for i in c.flush()]
    assert len(whole) > 5
    inc = next(iter(c.recent))
    saved = inc.to_state(event_to_json)
    assert {f.name for f in dataclasses.fields(inc)} <= set(saved)  # a field added later is saved too
    for k in range(len(events) + 1):
        c = Correlator(60)
        out = emitted(c, events[:k])
        saved = json.loads(json.dumps(c.to_state(event_to_json)))
        c = Correlator.from_state(saved, Relinker(cat, same_catalogue=True).event, gap=60)
        out += emitted(c, events[k:]) + [i.to_dict() for i in c.flush()]
        assert out == whole, f"differs when stopped after event {k}"


def test_journal_sink_writes_an_entry_a_real_journald_stores(host: Path, tmp_path: Path):
    if os.geteuid() != 0:
        pytest.skip("a private journald needs a mount namespace: root (CI runs as root)")
    work = tmp_path / "journald"
    w = watch(host, "--window", "30", "--sink", "stdout", "--sink", "journal", wrapper=in_private_journald(work))
    try:
        append(host / "log" / "qemu" / "web01.log", qemu_line(GUEST_RAM))
        inc = w.wait(lambda o: o["status"] == "open")
        assert w.stop() == 0
    finally:
        if w.proc.poll() is None:
            w.kill()
        stop_private_journald(work)  # when the namespace could not
    got = subprocess.run(["journalctl", "-D", str(work / "run-log" / "journal"), "-o", "json",
                          f"MESSAGE_ID={MESSAGE_ID}"], capture_output=True, text=True, check=True)
    entries = [json.loads(line) for line in got.stdout.splitlines()]
    assert len(entries) == 1, got.stdout
    e = entries[0]
    assert e["MESSAGE"] == f"[open v1] {inc['title']}"
    assert (e["SYSLOG_IDENTIFIER"], e["PRIORITY"]) == \
        ("logsense", {"critical": "2", "major": "3", "minor": "4"}[inc["severity"]])
    assert (e["LOGSENSE_ID"], e["LOGSENSE_STATUS"], e["LOGSENSE_VERSION"]) == (inc["id"], "open", "1")
    assert (e["LOGSENSE_VM"], e["LOGSENSE_ROOT_CAUSE"], e["LOGSENSE_SEVERITY"]) == \
        ("web01", "qemu.memory.guest-ram-alloc-failed", inc["severity"])
    assert e["LOGSENSE_REMEDIATION"].split("\n") == inc["remediation"]
    assert json.loads(e["LOGSENSE_EVIDENCE"]) == inc["evidence"]


def test_a_path_that_does_not_exist_yet_is_warned_about_and_read_when_it_appears(host: Path):
    later = host / "log" / "later" / "app.log"
    (host / "log" / "later").mkdir()
    w = watch(host, "--emit", "events", paths=[later])
    try:
        assert any(f"{later} does not exist yet" in line for line in w.err)
        append(later, libvirtd_line(MISSING_IMAGE))
        ev = w.wait(lambda o: o.get("file") == str(later))
        assert (ev["line"], ev["pattern"]) == (1, "libvirt.disk_image.storage-file-missing")
    finally:
        assert w.stop() == 0
