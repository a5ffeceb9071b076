"""A file's bytes as records, the same for a whole archive file and a live file read as it
grows: complete lines only, a line longer than MAX_LINE cut to its head (counted) and the rest
skipped, and the offset a resume may start at (never inside a record the parser still holds).

    reader = LineReader(parser)
    recs = reader.feed(data)            # data: the file's bytes from reader.offset on
    recs += reader.feed(b"", at_end=True)   # a finished file: its unterminated last line too
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import BinaryIO

from logsense.model import Record
from logsense.parsers import MAX_LINE, LineParser, Selector, decode_line

CHUNK = 8 << 20  # bytes read at a time from an archive file
PRIME_BYTES = 64 * 1024  # how far back a reader starting mid-file looks for its context
PRIME_LINES = 200


LONE_CR = re.compile(rb"\r(?!\n)")


class LineReader:
    """Position and parser of one file. `offset`/`lineno`: the first byte and line not yet
    consumed; `safe`: the (offset, lineno) to resume at, where the parser held nothing back."""

    def __init__(self, parser: LineParser | None = None, offset: int = 0, lineno: int = 1,
                 fast: bool = False) -> None:
        self.parser = parser
        self.fast = fast  # the format's lines stand alone: a selector may skip the rest
        self.offset, self.lineno = offset, lineno
        self.safe = (offset, lineno)
        self.skipping = False  # inside a cut line: its rest is dropped up to its newline
        self.lines_read = 0

    def feed(self, data: bytes, at_end: bool = False, select: Selector | None = None) -> list[Record]:
        """Records of the complete lines at the start of `data` (the bytes from `offset` on);
        with `at_end`, an unterminated last line counts as complete. `select` (the catalogue's
        multi-pattern scan) picks the lines worth parsing, for formats whose lines stand alone."""
        if b"\r" in data:  # a lone CR ends a line too (old Mac, some devices); same length, offsets hold
            # but a CR last in `data` may be the first half of a CRLF whose LF is not read yet
            held_cr = data.endswith(b"\r") and not at_end
            data = LONE_CR.sub(b"\n", data[:-1] if held_cr else data) + (b"\r" if held_cr else b"")
        if self.skipping:
            nl = data.find(b"\n")
            if nl < 0:
                self.offset += len(data)
                return []
            self.offset += nl + 1
            self.skipping = False
            if self.parser is not None and not self.parser.holding:
                self.safe = (self.offset, self.lineno)
            data = data[nl + 1:]
        if not data:
            return []
        cut = data.rfind(b"\n") + 1
        if cut == 0 and len(data) > MAX_LINE:  # a monster line: its head now, the rest skipped
            buf, cut = data[:MAX_LINE + 1] + b"\n", len(data)
            self.skipping = not at_end
        elif at_end and cut < len(data):
            buf, cut = data + b"\n", len(data)
        elif cut == 0:
            return []
        else:
            buf = data[:cut]
        recs = self._parse(buf, select)
        self.offset += cut
        if not self.skipping and (self.parser is None or not self.parser.holding):
            self.safe = (self.offset, self.lineno)
        return recs

    def flush(self) -> list[Record]:
        """The record the parser holds (end of a file, or the file has been quiet a while)."""
        if self.parser is None or not self.parser.holding:
            return []
        got = self.parser.flush()
        self.safe = (self.offset, self.lineno)
        return got if isinstance(got, list) else [got] if got is not None else []

    def prime(self, before: bytes) -> None:
        """Starting mid-file (a first start at a file's end): the lines just above give the
        parser its context (a QEMU log's last stamp); nothing of theirs is handed out."""
        if self.parser is None:
            return
        lines = before.split(b"\n")[1 if len(before) >= PRIME_BYTES else 0:]
        for raw in lines[-PRIME_LINES:]:
            self.parser.parse(decode_line(raw, self.parser.ctx), 0)
        self.parser.flush()
        self.parser.ctx.stats.clear()

    def _parse(self, buf: bytes, select: Selector | None) -> list[Record]:
        parser = self.parser
        assert parser is not None
        ctx = parser.ctx
        n = buf.count(b"\n")
        ctx.count("lines_read", n)
        self.lines_read += n
        out: list[Record] = []
        if select is not None and self.fast:
            lineno, pos = self.lineno, 0
            for start, end in select(buf):
                lineno += buf.count(b"\n", pos, start)
                pos = start
                parser.before_selected(buf, start, lineno)  # type: ignore[attr-defined]
                self._take(parser.parse(decode_line(buf[start:end], ctx), lineno), out)
            self.lineno += n
            return out
        start, lineno = 0, self.lineno
        held_from = self.safe if parser.holding else None
        pos = buf.find(b"\n")
        while pos >= 0:
            was_holding = parser.holding
            self._take(parser.parse(decode_line(buf[start:pos], ctx), lineno), out)
            if parser.holding and not was_holding:
                held_from = (self.offset + start, lineno)  # a multi-line record begins here
            lineno += 1
            start = pos + 1
            pos = buf.find(b"\n", start)
        self.lineno = lineno
        if parser.holding and held_from is not None:
            self.safe = held_from
        return out

    def _take(self, got: Record | list[Record] | None, out: list[Record]) -> None:
        """A parser gives a record, none, or several (pasted text that joined lines)."""
        for rec in got if isinstance(got, list) else () if got is None else (got,):
            if not rec.parsed:
                self.parser.ctx.count("unparsed_lines")  # type: ignore[union-attr]
            out.append(rec)


def read_stream(stream: BinaryIO, reader: LineReader, select: Selector | None = None) -> Iterator[Record]:
    """Every record of a whole file (an archive's, decompressed), read CHUNK bytes at a time."""
    carry = b""
    while True:
        block = stream.read(CHUNK)
        if not block:
            break
        data = carry + block if carry else block
        before = reader.offset
        yield from reader.feed(data, select=select)
        used = reader.offset - before
        carry = data[used:] if used < len(data) else b""
    yield from reader.feed(carry, at_end=True, select=select)
    yield from reader.flush()
