"""Property-based fuzzing of every line parser through the shared LineReader (issue 16, Proof):
whatever bytes a file holds, no exception, records of the documented types, and every line
counted once (records never outnumber lines for formats whose lines stand alone)."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from logsense import parsers
from logsense.ingest import formats
from logsense.ingest.linereader import LineReader, read_stream

REAL = [  # real lines of each format, as fixtures/formats has them, to mutate and splice
    b"2024-03-15 10:21:07.123+0000: 1466: error : qemuMonitorIO:621 : internal error: End of file from monitor",
    b"2024-03-15 10:21:07.123+0000: starting up libvirt version: 9.0.0, qemu version: 7.2.0",
    b"2024-03-15T10:21:07.123456Z qemu-system-x86_64: terminating on signal 15 from pid 1466 (/usr/sbin/libvirtd)",
    b"qemu-system-x86_64: -drive file=/var/lib/libvirt/images/db01.qcow2: Could not open: Permission denied",
    b"LC_ALL=C PATH=/usr/bin QEMU_AUDIO_DRV=none /usr/bin/qemu-system-x86_64 -name guest=db01 \\",
    b"Mar 15 10:21:07 kvm01 kernel: [12345.678901] Out of memory: Killed process 4242 (qemu-kvm)",
    b"<30>1 2024-03-15T10:21:07.123456+01:00 kvm01 libvirtd 1466 - - internal error: End of file",
    b"2024-03-15T10:21:07.123456+01:00 kvm01 libvirtd[1466]: internal error: End of file from monitor",
    b"[12345.678901] kvm: emulating exchange as write",
    b"-- Logs begin at Fri 2024-03-15 10:00:00 UTC. --",
    b"9999-12-31 23:59:59.999-2359: 1: error : x:1 : y",
    b"Feb 29 10:21:07 kvm01 kernel: leap",
]
line = st.one_of(
    st.sampled_from(REAL),
    st.builds(lambda a, b, c: a[:b] + c, st.sampled_from(REAL), st.integers(0, 120), st.binary(max_size=40)),
    st.binary(max_size=120),
    st.text(max_size=80).map(lambda s: s.encode("utf-8", "surrogatepass")),
)
files = st.builds(lambda ls, sep, tail: sep.join(ls) + (sep if tail else b""),
                  st.lists(line, max_size=25), st.sampled_from([b"\n", b"\r\n", b"\r"]), st.booleans())
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def lines_in(data: bytes) -> int:
    """Lines as the reader counts them: LF, CRLF or a lone CR ends one; an unterminated tail is one."""
    text = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return text.count(b"\n") + (1 if text and not text.endswith(b"\n") else 0)


def read(fmt: str, data: bytes, chunked: bool):
    ctx = formats.file_context(f"/var/log/{fmt}.log", fmt, data[:4096], "kvm01", UTC, 2024, 3)
    reader = LineReader(formats.new_parser(fmt, ctx))
    if chunked:  # the daemon's way: any split of the bytes, an unterminated tail held until the end
        recs, pos = [], 0
        for size in (7, 64, 1, 500):
            recs += reader.feed(data[reader.offset:pos + size])
            pos += size
        while reader.offset < len(data):
            before = reader.offset
            recs += reader.feed(data[reader.offset:], at_end=True)
            if reader.offset == before:
                break
        return recs + reader.flush(), reader
    return list(read_stream(io.BytesIO(data), reader)), reader


def check(fmt: str, data: bytes, chunked: bool = False) -> None:
    recs, reader = read(fmt, data, chunked)
    n = lines_in(data)
    assert reader.lines_read == n  # every line counted once
    assert reader.offset == len(data)
    for rec in recs:
        assert isinstance(rec.ts, datetime) and rec.ts.tzinfo is not None
        assert isinstance(rec.message, str) and isinstance(rec.raw, str) and isinstance(rec.source, str)
        assert rec.pid is None or isinstance(rec.pid, int)
        assert rec.level is None or isinstance(rec.level, str)
        assert rec.line is None or 1 <= rec.line <= n
    numbered = [r.line for r in recs if r.line is not None]
    if fmt in parsers.STATELESS:  # one line, at most one record
        assert len(recs) <= n
        assert numbered == sorted(set(numbered))
    else:
        assert numbered == sorted(numbered)


@FUZZ
@given(fmt=st.sampled_from(sorted(parsers.LINE_PARSERS)), data=files)
@example(fmt="libvirtd", data=b"9999-12-31 23:59:59.999-2359: 1: error : x:1 : y\n")
@example(fmt="syslog", data=b"Feb 29 10:21:07 kvm01 kernel: leap\r\rMar 1 00:00:00 h k: x")
@example(fmt="qemu", data=b"0001-01-01T00:00:00.000000Z qemu-system-x86_64: x\n\x00\xff\n")
def test_every_parser_takes_any_bytes(fmt: str, data: bytes):
    check(fmt, data)


@FUZZ
@given(fmt=st.sampled_from(sorted(parsers.LINE_PARSERS)), data=files)
@example(fmt="console", data=b"abcdef\r\nxyz\r\n")  # a CRLF cut between its CR and LF was two line ends
def test_any_split_of_the_bytes_reads_the_same_lines(fmt: str, data: bytes):
    check(fmt, data, chunked=True)


@FUZZ
@given(data=st.binary(max_size=300) | files)
def test_format_detection_takes_any_bytes(data: bytes):
    fmt = formats.detect("/var/log/x.log", data)
    assert fmt is None or isinstance(fmt, str)
