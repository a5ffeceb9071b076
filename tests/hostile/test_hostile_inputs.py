"""Hostile input trees (issue 16, classes 14, 15, 17): bombs stop at a cap, deep trees and
archives are walked without recursion limits, nothing unreadable is skipped silently, a FIFO
never hangs a run."""

from __future__ import annotations

import json
import lzma
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import FIXTURES, LOGSENSE, ROOT

from logsense.sources import remove_tree

SAMPLE_QEMU = FIXTURES / "formats" / "var" / "log" / "libvirt" / "qemu" / "web01.log"


def analyze(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*LOGSENSE, "analyze", "--format", "json", "--tz", "UTC", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout, env={**os.environ, **(env or {})})


def incidents(proc: subprocess.CompletedProcess) -> list[dict]:
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)["incidents"]


def test_a_tree_1000_folders_deep_is_read_to_the_bottom(tmp_path: Path):
    deep = tmp_path / "host"
    leaf = deep
    for name in ["d"] * 1000 + ["qemu"]:  # one level at a time: pathlib's mkdir(parents=True) recurses
        leaf.mkdir(exist_ok=True)
        leaf = leaf / name
    leaf.mkdir()
    leaf = leaf.parent
    (leaf / "qemu" / "web01.log").write_bytes(SAMPLE_QEMU.read_bytes())
    try:
        proc = analyze(str(deep))
    finally:
        remove_tree(deep)  # pytest's own clean-up recurses once per level
    assert proc.returncode == 0, proc.stderr
    assert any(i["vm"] == "web01" for i in incidents(proc))


def test_a_tar_1000_folders_deep_is_read_to_the_bottom(tmp_path: Path):
    tar_path = tmp_path / "deep.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(SAMPLE_QEMU, arcname="/".join(["d"] * 1000) + "/qemu/web01.log")
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    proc = analyze(str(tar_path), env={"TMPDIR": str(private_tmp)})
    assert proc.returncode == 0, proc.stderr
    assert any(i["vm"] == "web01" for i in incidents(proc))
    assert not any(private_tmp.iterdir())  # unpacked there, and removed again


def test_a_tar_bomb_stops_at_the_unpack_cap_and_the_rest_is_analyzed(tmp_path: Path):
    zeros = tmp_path / "zeros.log"
    with open(zeros, "wb") as f:
        f.truncate(50 << 20)
    tar_path = tmp_path / "bomb.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(SAMPLE_QEMU, arcname="host/var/log/libvirt/qemu/web01.log")
        tar.add(zeros, arcname="host/var/log/zzz/zeros.log")
        tar.add(zeros, arcname="host/var/log/zzz/zeros2.log")
    proc = analyze(str(tar_path), env={"LOGSENSE_MAX_UNPACK": str(10 << 20)})
    assert proc.returncode == 0, proc.stderr
    assert "unpacking would exceed 10.0 MiB" in proc.stderr
    assert any(i["vm"] == "web01" for i in incidents(proc))


def test_a_journal_xz_bomb_stops_at_the_unpack_cap(tmp_path: Path):
    jdir = tmp_path / "var" / "log" / "journal" / "0123456789abcdef0123456789abcdef"
    jdir.mkdir(parents=True)
    with lzma.open(jdir / "system.journal.xz", "wb") as f:
        for _ in range(40):
            f.write(bytes(1 << 20))
    (tmp_path / "var" / "log" / "messages").write_text(
        "Mar  5 10:11:12 kvm01 kernel: Out of memory: Killed process 28932 (qemu-system-x86) total-vm:9012345kB, "
        "anon-rss:8123456kB, file-rss:1234kB, shmem-rss:0kB, UID:64055 pgtables:17000kB oom_score_adj:0\n")
    proc = analyze(str(tmp_path / "var"), "--year", "2024", env={"LOGSENSE_MAX_UNPACK": str(8 << 20)})
    assert "unpacking would exceed 8.0 MiB" in proc.stderr
    assert any(i["category"] == "memory" for i in incidents(proc))


def test_an_archive_inside_a_folder_is_warned_about(tmp_path: Path):
    (tmp_path / "host" / "qemu").mkdir(parents=True)
    (tmp_path / "host" / "qemu" / "web01.log").write_bytes(SAMPLE_QEMU.read_bytes())
    with tarfile.open(tmp_path / "host" / "older-logs.tar.gz", "w:gz") as tar:
        tar.add(SAMPLE_QEMU, arcname="web02.log")
    proc = analyze(str(tmp_path / "host"))
    assert "older-logs.tar.gz: an archive inside the input is not unpacked" in proc.stderr
    assert any(i["vm"] == "web01" for i in incidents(proc))


def test_a_fifo_named_on_the_command_line_does_not_hang(tmp_path: Path):
    fifo = tmp_path / "libvirtd.log"
    os.mkfifo(fifo)
    proc = analyze(str(fifo), str(SAMPLE_QEMU), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert any(i["vm"] == "web01" for i in incidents(proc))


def test_a_fifo_inside_a_folder_is_not_opened(tmp_path: Path):
    (tmp_path / "host" / "qemu").mkdir(parents=True)
    (tmp_path / "host" / "qemu" / "web01.log").write_bytes(SAMPLE_QEMU.read_bytes())
    os.mkfifo(tmp_path / "host" / "qemu" / "web02.log")
    proc = analyze(str(tmp_path / "host"), timeout=60)
    assert any(i["vm"] == "web01" for i in incidents(proc))


def _nobody_can_run_logsense() -> bool:
    probe = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *LOGSENSE, "--help"],
                           capture_output=True, cwd="/", env={**os.environ, "HOME": "/tmp"})
    return probe.returncode == 0


def test_an_unreadable_sub_folder_is_said_not_skipped_silently(tmp_path: Path):
    if os.geteuid() != 0 or not _nobody_can_run_logsense():
        pytest.skip("needs root to run logsense as nobody (the checkout must be readable by nobody)")
    tree = Path(os.environ.get("TMPDIR", "/tmp")) / f"logsense-unreadable-{os.getpid()}"
    qemu = tree / "var" / "log" / "libvirt" / "qemu"
    qemu.mkdir(parents=True)
    (qemu / "web01.log").write_bytes(SAMPLE_QEMU.read_bytes())
    (tree / "var" / "log" / "messages").write_text("Mar  5 10:11:12 kvm01 systemd[1]: Started foo.\n")
    for d in (tree, tree / "var", tree / "var" / "log", tree / "var" / "log" / "libvirt"):
        d.chmod(0o755)
    qemu.chmod(0o700)  # root-only, as libvirt ships it
    try:
        proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *LOGSENSE, "analyze",
                               "--format", "json", "--tz", "UTC", str(tree)], capture_output=True, text=True,
                              cwd="/", env={**os.environ, "HOME": "/tmp", "XDG_CACHE_HOME": str(tree / "cache")},
                              timeout=120)
    finally:
        subprocess.run(["rm", "-rf", str(tree)], check=False)
    assert "libvirt/qemu: cannot read folder: Permission denied; its logs are missing" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
