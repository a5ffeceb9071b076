"""A damaged state file under the real daemon (issue 16, class 11): what was written while it
was stopped is emitted after the restart, whatever happened to the state file."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from test_daemon import JOURNAL_REMOTE, add_journal, lines_of, numbered, seqs, watch
from test_daemon_helpers import Watch, append

pytestmark = pytest.mark.slow


@pytest.fixture
def host(tmp_path: Path) -> Path:
    (tmp_path / "log" / "qemu").mkdir(parents=True)
    (tmp_path / "state").mkdir()
    return tmp_path


def damage_empty(p: Path) -> None:
    p.write_bytes(b"")


def damage_truncated(p: Path) -> None:
    p.write_bytes(p.read_bytes()[:100])


def damage_not_json(p: Path) -> None:
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00 not a state")


def damage_unreadable(p: Path) -> None:
    p.unlink()
    os.mkfifo(p)  # opening it to read would block: it is not a regular file


def damage_wrong_shape(p: Path) -> None:
    p.write_text(json.dumps([json.loads(p.read_text())]))


DAMAGES = [damage_empty, damage_truncated, damage_not_json, damage_unreadable, damage_wrong_shape]


def run_damage_restart(host: Path, damage, keep_backup: bool) -> tuple[list[int], list[str]]:
    """Lines 0-49 read and saved; the state damaged; 50-79 written while stopped; 80-99 after
    the restart. What the second run emitted and said."""
    log = host / "log" / "libvirtd.log"
    log.write_text("")
    w = watch(host, "--emit", "events", "--all")
    append(log, numbered(0, 50))
    w.wait(lambda o: o["message"].endswith("seq=49"))
    assert w.stop() == 0
    state = host / "state" / "state.json"
    backup = host / "state" / "state.json.bak"
    if not keep_backup:
        backup.unlink()
    damage(state)
    append(log, numbered(50, 80))
    w2 = watch(host, "--emit", "events", "--all")
    append(log, numbered(80, 100))
    w2.wait(lambda o: o["message"].endswith("seq=99"))
    assert w2.stop() == 0
    assert json.loads(state.read_text())["files"]  # saved again, a state like any other
    return seqs(w2), [line for line in w2.err if "warning" in line]


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda f: f.__name__[7:])
def test_with_no_usable_state_the_last_mib_is_read_again_and_nothing_written_while_stopped_is_lost(
        host: Path, damage):
    got, said = run_damage_restart(host, damage, keep_backup=False)
    assert set(range(50, 100)) <= set(got)  # nothing lost
    assert got == sorted(got) and len(got) == len(set(got))  # in order, each at most once a run
    assert set(got) - set(range(50, 100)) <= set(range(50))  # duplicates only from within the look-back
    state_said = [line for line in said if "state" in line]
    assert len(state_said) == 1 and "state unusable (state.json: " in state_said[0], said
    assert "re-reading the last 1 MiB of each file" in state_said[0]


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda f: f.__name__[7:])
def test_a_damaged_state_with_its_backup_repeats_at_most_the_last_save(host: Path, damage):
    got, said = run_damage_restart(host, damage, keep_backup=True)
    assert got[-50:] == list(range(50, 100))
    state_said = [line for line in said if "state" in line]
    assert len(state_said) == 1 and "using state.json.bak" in state_said[0], said


def test_the_look_back_is_bounded_by_the_setting(host: Path, tmp_path: Path):
    """With `lookback` set to a few lines' bytes, only those lines come again: a huge log is
    not read again whole."""
    log = host / "log" / "libvirtd.log"
    w = watch(host, "--emit", "events", "--all")
    append(log, numbered(0, 1000))
    w.wait(lambda o: o["message"].endswith("seq=999"))
    assert w.stop() == 0
    (host / "state" / "state.json").write_text("{")
    (host / "state" / "state.json.bak").unlink()
    append(log, numbered(1000, 1010))
    line_bytes = len(numbered(1000, 1001))  # lines 990-999 are a byte shorter: 20 of these reach into 989
    config = tmp_path / "logsense.toml"
    config.write_text(f"lookback = {20 * line_bytes}\n")
    w2 = watch(host, "--emit", "events", "--all", "--config", str(config))
    w2.wait(lambda o: o["message"].endswith("seq=1009"))
    assert w2.stop() == 0
    assert seqs(w2) == list(range(990, 1010))  # 20 lines back from the end: 10 again, 10 new
    assert not any("seq=" not in m for m in lines_of(w2))


def test_a_damaged_file_entry_re_reads_that_file_only(host: Path):
    vm = host / "log" / "qemu" / "web01.log"
    log = host / "log" / "libvirtd.log"
    vm.write_text("")
    log.write_text("")
    w = watch(host, "--emit", "events", "--all")
    append(log, numbered(0, 10))
    append(vm, numbered(100, 110))
    w.wait_count(lambda o: "seq=" in o["message"], 20)
    assert w.stop() == 0
    state = host / "state" / "state.json"
    data = json.loads(state.read_text())
    data["files"][str(log)]["offset"] = [1]
    state.write_text(json.dumps(data))
    (host / "state" / "state.json.bak").unlink()  # else the whole state before it is used
    append(log, numbered(10, 12))
    append(vm, numbered(110, 112))
    w2 = watch(host, "--emit", "events", "--all")
    w2.wait_count(lambda o: "seq=" in o["message"], 14)
    assert w2.stop() == 0
    assert sorted(seqs(w2)) == [*range(12), 110, 111]  # the damaged one from the look-back, the other on
    assert any(f"files[{str(log)!r}]: offset: list, not a whole number" in line for line in w2.err)


def test_with_no_usable_state_the_journal_is_read_from_the_state_files_time(host: Path, tmp_path: Path):
    if not Path(JOURNAL_REMOTE).exists():
        pytest.fail("systemd-journal-remote is not installed (bash dev.sh test installs it)")
    jdir = tmp_path / "journal"
    jdir.mkdir()
    add_journal(jdir, tmp_path, 0, 3, base_usec=int((time.time() - 600) * 1e6))  # before the first run
    common = [str(host / "log"), "--state-dir", str(host / "state"), "--host", "kvm01", "--emit", "events",
              "--journal-dir", str(jdir)]
    w = Watch(*common).ready()
    assert w.stop() == 0
    (host / "state" / "state.json").write_text("")
    with contextlib.suppress(FileNotFoundError):
        (host / "state" / "state.json.bak").unlink()
    add_journal(jdir, tmp_path, 3, 2, base_usec=int(time.time() * 1e6))  # while it was stopped
    w2 = Watch(*common).ready()
    w2.wait(lambda o: o["message"].endswith("seq=4"))
    assert w2.stop() == 0
    assert [o["message"] for o in w.out + w2.out] == \
        [f"internal error: End of file from monitor seq={i}" for i in (3, 4)]
    assert any("re-reading the last 1 MiB of each file and the journal since" in line for line in w2.err)


def in_tiny_tmpfs(state_dir: Path) -> list[str]:
    """A command prefix: the command in a private mount namespace where `state_dir` is a 256 KiB
    tmpfs (nothing outside the namespace sees it; it goes with the process)."""
    return ["unshare", "-m", "--propagation", "private", "sh", "-c",
            'mount -t tmpfs -o size=256k logsense-test "$0" && exec "$@"', str(state_dir)]


def in_namespace_of(pid: int, script: str) -> None:
    subprocess.run(["nsenter", "-t", str(pid), "-m", "sh", "-c", script], check=False, timeout=30,
                   stderr=subprocess.DEVNULL)


def test_a_full_state_disk_is_said_once_and_its_recovery_once(host: Path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs in a private mount namespace needs root")
    state = host / "state"
    log = host / "log" / "libvirtd.log"
    log.write_text("")
    w = watch(host, "--emit", "events", "--all", "--settle", "0", wrapper=in_tiny_tmpfs(state))
    in_namespace_of(w.proc.pid, f"cat /dev/zero > {state}/fill")  # ENOSPC: the disk is full
    for i in range(40):  # a line every 0.15 s (saves are at most 0.1 s apart): each a save that fails
        append(log, numbered(i, i + 1))
        w.wait(lambda o, i=i: o["message"].endswith(f"seq={i}"))
        time.sleep(0.15)  # the pace of the writer, not a wait for the daemon
    in_namespace_of(w.proc.pid, f"rm {state}/fill")
    append(log, numbered(40, 41))
    w.wait(lambda o: o["message"].endswith("seq=40"))
    recovered = w.wait_err(lambda line: "state saved again" in line)
    assert w.stop() == 0
    failed = int(recovered.split("after ")[1].split(" failed")[0])
    assert failed >= 40
    said = [line for line in w.err if "save state" in line]
    assert len(said) == 1 and "cannot save state: No space left on device" in said[0], w.err
    assert not list(state.iterdir())  # all of it happened in the namespace's tmpfs
