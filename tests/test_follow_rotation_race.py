"""Fast rotation with compression racing the tailer's look at the rotation set, in-process and
deterministic: the writer's real file operations run at the exact point of the catch-up's
listing where they once lost or doubled a whole generation under load (logrotate's `compress` without
`delaycompress`, a generation rotated and compressed before the tailer ever opened it); and an
inode reused by a generation the tailer never opened."""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from test_ingest_tailer import numbered, poll, tailer

from logsense.follow import Tailer


def shift(log: Path) -> None:
    """Numbered rotation: .k.gz -> .k+1.gz, the log -> .1, a new empty log."""
    gens = sorted((int(p.name[len(log.name) + 1:].split(".")[0]), p) for p in log.parent.glob(log.name + ".*.gz"))
    for k, p in reversed(gens):
        p.rename(log.with_name(f"{log.name}.{k + 1}.gz"))
    log.rename(log.with_name(log.name + ".1"))
    log.write_bytes(b"")


def compress(log: Path) -> None:
    """.1 into .1.gz (the .gz file exists, empty, before its content is written), then .1 unlinked."""
    plain = log.with_name(log.name + ".1")
    with gzip.open(str(plain) + ".gz", "wb") as z:
        z.write(plain.read_bytes())
    plain.unlink()


def poll_while(t: Tailer, writer: Callable[[], None], monkeypatch: pytest.MonkeyPatch) -> list:
    """A poll during which `writer` runs between the catch-up's listing of the set and its
    first look at a name listed (`.1.gz`): a rotation racing the listing."""
    real_lstat, fired = os.lstat, []

    def lstat(path, *args, **kwargs):
        if not fired and str(path).endswith(".log.1.gz"):
            fired.append(path)
            writer()
        return real_lstat(path, *args, **kwargs)

    monkeypatch.setattr(os, "lstat", lstat)
    got = poll(t)
    monkeypatch.undo()
    assert fired
    return got


def first_generation_rotated(tmp_path: Path, generations: int) -> tuple[Path, list[bytes], Tailer, list]:
    """A log of `generations` generations of 6 lines to come: the first (A) read by a tailer,
    then rotated and compressed while the tailer still holds it. (log, generations, tailer, records)."""
    log = tmp_path / "libvirtd.log"
    gens = [numbered(k * 6, 6) for k in range(generations)]
    log.write_bytes(gens[0])  # A
    t = tailer(log)
    assert t.open(at_end=False)
    got = poll(t)
    shift(log)
    compress(log)  # A's .1.gz; A itself is held open by the tailer
    return log, gens, t, got


def test_a_compressed_generation_listed_while_still_empty_is_read_when_complete(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tailer opens the new log (B) and lists the set; between the listing and its look at
    `.1.gz`, B is rotated and compressed, the next generation (C) written and rotated, and C's
    `.1.gz` created but not yet written. That empty file, C's compressed copy to be, must not
    pass for a generation read: C is in no file the tailer holds."""
    log, gens, t, got = first_generation_rotated(tmp_path, 4)
    log.write_bytes(gens[1])  # B

    def writer() -> None:
        shift(log)
        compress(log)  # B's .2.gz to be; B is held open by the tailer
        log.write_bytes(gens[2])  # C, never opened by the tailer
        shift(log)
        log.with_name(log.name + ".1.gz").write_bytes(b"")  # the compressor has created C's .gz

    got += poll_while(t, writer, monkeypatch)  # notices A rotated away: opens B, lists the set
    plain = log.with_name(log.name + ".1")
    with gzip.open(str(plain) + ".gz", "wb") as z:  # the compressor writes C's .gz (same inode)
        z.write(plain.read_bytes())
    plain.unlink()  # C is gone: its inode is free for the next file
    log.write_bytes(log.read_bytes() + gens[3])  # D
    got += poll(t) + poll(t)
    assert [int(r.message.rsplit("=", 1)[1]) for r in got] == list(range(24))


def test_a_generation_held_open_is_known_in_its_compressed_copy_made_during_the_listing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tailer opens the new log (B) while it is still empty, so B's fingerprint covers no
    byte yet; during the listing B is written, rotated and compressed whole. B's `.1.gz` is
    B, read from the descriptor held: it must not be read from memory a second time."""
    log, gens, t, got = first_generation_rotated(tmp_path, 3)

    def writer() -> None:
        log.write_bytes(log.read_bytes() + gens[1])  # B, opened empty by the tailer, gets its lines
        shift(log)
        compress(log)  # B's .1.gz, whole

    got += poll_while(t, writer, monkeypatch)  # notices A rotated away: opens B, lists the set
    log.write_bytes(log.read_bytes() + gens[2])  # C
    got += poll(t) + poll(t)
    assert [int(r.message.rsplit("=", 1)[1]) for r in got] == list(range(18))


def test_a_file_seen_empty_does_not_stand_for_the_next_file_on_its_inode(tmp_path: Path) -> None:
    """A log rotated away while still empty is read (nothing), let go and deleted; the next
    log created gets its inode (ext4 reuses it at once), is written and rotated before the
    tailer looks. The empty head remembered for that inode proves nothing read: it is read."""
    log = tmp_path / "libvirtd.log"
    gens = [numbered(k * 6, 6) for k in range(3)]
    log.write_bytes(b"")  # A
    t = tailer(log)
    assert t.open(at_end=False)
    emptied = os.stat(log).st_ino
    log.rename(log.with_name(log.name + ".1"))
    log.write_bytes(gens[0])  # B
    got = poll(t) + poll(t)
    assert not t.rotated  # A read (empty) and let go
    log.with_name(log.name + ".1").unlink()  # `rotate 1`: the oldest goes; A's inode is free
    log.rename(log.with_name(log.name + ".1"))
    log.write_bytes(gens[1])  # C, never opened by the tailer
    if os.stat(log).st_ino != emptied:
        pytest.skip("this filesystem did not reuse the inode")
    log.with_name(log.name + ".1").unlink()
    log.rename(log.with_name(log.name + ".1"))
    log.write_bytes(gens[2])  # D
    got += poll(t) + poll(t)
    assert sorted(int(r.message.rsplit("=", 1)[1]) for r in got) == list(range(18))
