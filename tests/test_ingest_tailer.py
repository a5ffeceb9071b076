"""The live end of the line reader, in-process: a followed file's identity, rotation (rename
and copytruncate), resume from a saved position, and records that arrive however the bytes
are split. Real lines from fixtures/formats (libvirt 9.0 / QEMU 7.2 on Debian 12)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from conftest import FIXTURES

from logsense.follow import QUIET, FileOptions, Identity, Tailer
from logsense.ingest.formats import file_context, new_parser
from logsense.ingest.linereader import LineReader, read_stream
from logsense.parsers import MAX_LINE
from logsense.pipeline import parse_zone

LOGS = FIXTURES / "formats" / "var" / "log" / "libvirt"
LIBVIRTD = (LOGS / "libvirtd.log").read_bytes()
QEMU = (LOGS / "qemu" / "web01.log").read_bytes()
UTC = parse_zone("UTC")


def tailer(path: Path, warnings: list[str] | None = None) -> Tailer:
    t = Tailer(str(path), FileOptions(host="kvm01", tz=UTC, year=2024, rotated_grace=0.0),
               (warnings if warnings is not None else []).append)
    return t


def messages(recs) -> list[str]:
    return [r.message for r in recs]


def poll(t: Tailer) -> list:
    return t.poll(lambda _source: None)[0]


def lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def test_identity_is_inode_and_head_so_a_reused_inode_is_a_new_file(tmp_path: Path) -> None:
    log = tmp_path / "libvirtd.log"
    log.write_bytes(LIBVIRTD)
    fd = os.open(log, os.O_RDONLY)
    try:
        ident = Identity.of(fd)
        assert ident.matches(fd)
        with open(log, "r+b") as f:  # same inode, other first bytes: rewritten in place
            f.write(b"X")
        assert not ident.matches(fd)
        assert Identity.from_json(ident.to_json()) == ident
    finally:
        os.close(fd)


def test_a_line_is_handed_out_only_once_complete(tmp_path: Path) -> None:
    log = tmp_path / "libvirtd.log"
    first, second = lines(LIBVIRTD)[2], lines(LIBVIRTD)[3]
    log.write_bytes(first + second[:20])
    t = tailer(log)
    assert t.open(at_end=False)
    assert messages(poll(t)) == ["internal error: End of file from monitor"]
    with open(log, "ab") as f:
        f.write(second[20:])
    got = poll(t)
    assert [r.line for r in got] == [2] and got[0].raw == second.decode().rstrip("\n")


def test_rename_rotation_reads_the_old_file_to_its_end_then_the_new_one(tmp_path: Path) -> None:
    log = tmp_path / "libvirtd.log"
    body = lines(LIBVIRTD)
    log.write_bytes(b"".join(body[:4]))
    t = tailer(log)
    t.open(at_end=False)
    assert len(poll(t)) == 4
    with open(log, "ab") as writer:  # the writer still has the old file open across the rename
        os.rename(log, tmp_path / "libvirtd.log.1")
        log.write_bytes(b"".join(body[6:]))
        writer.write(b"".join(body[4:6]))
    got = poll(t)
    files = [(os.path.basename(r.file), r.line) for r in got]
    assert files == [("libvirtd.log.1", 5), ("libvirtd.log.1", 6)] + [
        ("libvirtd.log", n) for n in range(1, len(body) - 6 + 1)]
    assert not t.rotated  # quiet for the grace (0 here) with the new file in place: finished


def test_copytruncate_rotation_reads_the_new_lines_from_the_start(tmp_path: Path) -> None:
    log = tmp_path / "libvirtd.log"
    body = lines(LIBVIRTD)
    log.write_bytes(b"".join(body[:5]))
    warnings: list[str] = []
    t = tailer(log, warnings)
    t.open(at_end=False)
    poll(t)
    with open(log, "r+b") as f:  # logrotate's copytruncate, then the writer goes on
        f.truncate(0)
    with open(log, "ab") as f:
        f.write(b"".join(body[5:]))
    got = poll(t)
    assert [r.line for r in got] == list(range(1, len(body) - 5 + 1))
    assert any("truncated" in w for w in warnings)


def test_resume_reads_only_what_came_after_the_save(tmp_path: Path) -> None:
    log = tmp_path / "libvirtd.log"
    body = lines(LIBVIRTD)
    log.write_bytes(b"".join(body[:5]))
    t = tailer(log)
    t.open(at_end=False)
    poll(t)
    saved = t.saved()
    t.close()
    with open(log, "ab") as f:
        f.write(b"".join(body[5:]))
    again = tailer(log)
    again.resume(saved)
    assert [r.line for r in poll(again)] == list(range(6, len(body) + 1))


def test_resume_after_a_rotation_while_stopped_reads_the_rest_of_the_old_file(tmp_path: Path) -> None:
    log = tmp_path / "libvirtd.log"
    body = lines(LIBVIRTD)
    log.write_bytes(b"".join(body[:3]))
    t = tailer(log)
    t.open(at_end=False)
    poll(t)
    saved = t.saved()
    t.close()
    with open(log, "ab") as f:
        f.write(body[3])
    os.rename(log, tmp_path / "libvirtd.log.1")
    log.write_bytes(b"".join(body[4:]))
    again = tailer(log)
    again.resume(saved)
    got = poll(again)
    assert [(os.path.basename(r.file), r.line) for r in got][:2] == [("libvirtd.log.1", 4), ("libvirtd.log", 1)]
    assert len(got) == len(body) - 3


def test_a_restart_inside_a_qemu_command_line_resumes_at_its_first_line(tmp_path: Path) -> None:
    log = tmp_path / "qemu" / "web01.log"
    log.parent.mkdir()
    body = lines(QEMU)
    inside = next(n for n, ln in enumerate(body) if ln.startswith(b"-name "))
    log.write_bytes(b"".join(body[:inside]))
    t = tailer(log)
    t.open(at_end=False)
    assert messages(poll(t))[0].startswith("starting up libvirt version")
    saved = t.saved()
    assert saved["line"] == 2  # the command line begins on line 2: nothing of it is lost
    t.close()
    with open(log, "ab") as f:
        f.write(b"".join(body[inside:]))
    again = tailer(log)
    again.resume(saved)
    got = poll(again)
    cmd = next(r for r in got if r.extra.get("command_line"))
    assert cmd.line == 2 and cmd.extra["guest"] == "web01" and cmd.vm == "web01"


def test_a_command_line_whose_end_does_not_come_is_handed_out_after_a_quiet_time(tmp_path: Path) -> None:
    log = tmp_path / "qemu" / "web01.log"
    log.parent.mkdir()
    body = lines(QEMU)
    inside = next(n for n, ln in enumerate(body) if ln.startswith(b"-uuid "))
    log.write_bytes(b"".join(body[:inside + 1]))
    t = tailer(log)
    t.open(at_end=False)
    assert not any(r.extra.get("command_line") for r in poll(t))
    assert t.rotated_due() is not None  # the loop is woken to hand it out
    t.data_at -= QUIET  # as if QUIET seconds passed without a byte
    cmd = [r for r in poll(t) if r.extra.get("command_line")]
    assert len(cmd) == 1 and cmd[0].extra["uuid"] == "0d2bc6a8-0c0c-4a5e-9d2a-1c2f3e4d5a6b"


def test_a_monster_line_is_cut_the_same_live_and_in_batch(tmp_path: Path) -> None:
    body = lines(LIBVIRTD)
    monster = body[2].rstrip(b"\n") + b"x" * (3 * MAX_LINE) + b"\n"
    data = body[0] + monster + body[3]
    log = tmp_path / "libvirtd.log"
    log.write_bytes(b"")
    t = tailer(log)
    t.open(at_end=False)
    live = []
    with open(log, "ab") as f:
        for i in range(0, len(data), 700_000):  # written in pieces, polled after each
            f.write(data[i:i + 700_000])
            f.flush()
            live += poll(t)
    ctx = file_context(str(log), "libvirtd", data[:4096], "kvm01", UTC, 2024, 12)
    batch = list(read_stream(io.BytesIO(data), LineReader(new_parser("libvirtd", ctx))))
    assert [(r.line, len(r.raw)) for r in live] == [(r.line, len(r.raw)) for r in batch]
    assert [r.line for r in batch] == [1, 2, 3] and len(batch[1].raw) == MAX_LINE
    assert ctx.stats["long_lines"] == 1


@pytest.mark.parametrize("piece", [1, 7, 64, 4096])
def test_records_do_not_depend_on_how_the_bytes_are_split(piece: int) -> None:
    ctx = file_context("web01.log", "qemu", QEMU, "kvm01", UTC, 2024, 12)
    whole = list(read_stream(io.BytesIO(QEMU), LineReader(new_parser("qemu", ctx))))
    reader = LineReader(new_parser("qemu", file_context("web01.log", "qemu", QEMU, "kvm01", UTC, 2024, 12)))
    split = []
    for i in range(0, len(QEMU), piece):
        split += reader.feed(QEMU[reader.offset:i + piece])
    split += reader.feed(QEMU[reader.offset:], at_end=True) + reader.flush()
    assert [(r.line, r.message, r.ts) for r in split] == [(r.line, r.message, r.ts) for r in whole]


def numbered(first: int, n: int) -> bytes:
    return b"".join(f"2024-03-01 10:00:{k % 60:02d}.000+0000: 1234: info : virNetServerAddClient:17 : "
                    f"client seq={k}\n".encode() for k in range(first, first + n))


def test_a_generation_read_then_gone_is_known_when_it_comes_back_compressed(tmp_path: Path) -> None:
    """logrotate's compress: .1 is read, vanishes (a listing sees neither it nor its .gz yet),
    and later shows up as .2.gz: its lines are not read again."""
    import gzip

    log = tmp_path / "libvirtd.log"
    first, second = numbered(0, 6), numbered(6, 6)
    log.write_bytes(first)
    t = tailer(log)
    t.open(at_end=False)
    got = poll(t)
    os.rename(log, tmp_path / "libvirtd.log.1")
    log.write_bytes(b"")
    got += poll(t)
    assert not t.rotated  # read to its end and let go
    held = os.open(tmp_path / "libvirtd.log.1", os.O_RDONLY)  # the compressor reading it: no inode reuse
    (tmp_path / "libvirtd.log.1").unlink()  # being compressed: there under no name
    os.rename(log, tmp_path / "libvirtd.log.1")
    log.write_bytes(second)
    got += poll(t)
    with gzip.open(tmp_path / "libvirtd.log.2.gz", "wb") as z:  # the first generation, compressed
        z.write(first)
    os.rename(tmp_path / "libvirtd.log.1", tmp_path / "libvirtd.log.3")
    os.rename(log, tmp_path / "libvirtd.log.1")
    log.write_bytes(b"")
    got += poll(t) + poll(t)
    os.close(held)
    assert [r.message.rsplit("=", 1)[1] for r in got] == [str(k) for k in range(12)]
