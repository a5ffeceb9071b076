"""Journal entries as `Record`s: binary journal files (systemd.journal), the export format
(`journalctl -o export`) and `journalctl -o json` lines.

An entry keeps what the catalogue and attribution use: MESSAGE, the time, _HOSTNAME, _PID,
PRIORITY, SYSLOG_IDENTIFIER, _SYSTEMD_UNIT, and libvirt's own fields (LIBVIRT_SOURCE,
CODE_FUNC, LIBVIRT_CODE, LIBVIRT_DOMAIN), and its cursor. Where a host's boot id changes, a
record of journalctl's own `-- Boot ID --` line goes before the first entry of the new boot
(`BootMarks`): the catalogue's `host.host.journal-boot` makes it a boot of the host.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from logsense.model import EPOCH, Record

KEPT = ("SYSLOG_IDENTIFIER", "_SYSTEMD_UNIT", "_COMM", "_EXE", "LIBVIRT_SOURCE", "CODE_FUNC",
        "CODE_FILE", "CODE_LINE", "LIBVIRT_CODE", "LIBVIRT_DOMAIN", "_TRANSPORT", "UNIT",
        "MESSAGE_ID", "_MACHINE_ID", "_BOOT_ID")
LEVELS = {0: "error", 1: "error", 2: "error", 3: "error", 4: "warning", 5: "info", 6: "info", 7: "debug"}
MAX_FIELD = 1 << 20  # bytes of one field kept, like the 1 MiB line cap of log files
CHUNK = 1 << 16
Warn = Callable[[str], None]


class BootMarks:
    """A change of _BOOT_ID in a host's journal is a boot. `before(record)` gives, for the first
    entry of a new boot, the line journalctl prints between two boots (`-- Boot ID --`), at that
    entry's time; entries of the boot seen first are no change (the journal may start anywhere),
    unless `seed` said which boot came before (the entry a saved cursor names)."""

    def __init__(self) -> None:
        self.last: dict[str | None, str] = {}  # per machine (or host), the boot of its last entry

    @staticmethod
    def _key(rec: Record) -> str | None:
        return rec.extra.get("_MACHINE_ID") or rec.host

    def seed(self, entry: Mapping[str, Any] | None, host: str | None) -> None:
        if entry and (rec := record_or_skip(entry, None, host, None)) is not None and (boot := boot_of(rec)):
            self.last[self._key(rec)] = boot

    def before(self, rec: Record) -> Record | None:
        boot = boot_of(rec)
        if boot is None:
            return None
        key = self._key(rec)
        previous, self.last[key] = self.last.get(key), boot
        if previous is None or previous == boot:
            return None
        message = f"-- Boot {boot} --"
        extra = {k: rec.extra[k] for k in ("_BOOT_ID", "_MACHINE_ID") if k in rec.extra}
        return Record(ts=rec.ts, source="journal", message=message, raw=message, file=rec.file, host=rec.host,
                      extra=extra)


def boot_of(rec: Record) -> str | None:
    """The record's boot id as journalctl writes it (32 hex digits: systemd.journal gives a UUID)."""
    boot = rec.extra.get("_BOOT_ID")
    return boot.replace("-", "").lower() if boot else None


def with_boot_marks(records: Iterable[Record]) -> Iterator[Record]:
    """The records, each boot's first one preceded by its boot mark (`BootMarks`)."""
    marks = BootMarks()
    for rec in records:
        if (mark := marks.before(rec)) is not None:
            yield mark
        yield rec


class BadEntry(ValueError):
    """An entry that cannot be a record (no usable time): skipped and counted, never a crash."""


def _text(value: Any) -> str:
    """A field's value as text, whatever shape a writer gave it: a field sent twice comes as a
    list (its first value is used), a JSON binary field as a byte array."""
    if isinstance(value, bytes):
        return value[:MAX_FIELD].decode("utf-8", "replace")
    if isinstance(value, list):
        if value and all(isinstance(v, int) and 0 <= v < 256 for v in value):
            return bytes(value[:MAX_FIELD]).decode("utf-8", "replace")
        return _text(value[0]) if value else ""
    if value is None or isinstance(value, dict):
        return ""
    return str(value)[:MAX_FIELD]


def _number(value: Any) -> int | None:
    text = _text(value).strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) < 20 else None


def _timestamp(value: Any) -> datetime:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, datetime):
        ts = value if value.tzinfo else value.replace(tzinfo=UTC)
        return ts.astimezone(UTC)
    us = _number(value)
    if us is None:
        raise BadEntry(f"no usable __REALTIME_TIMESTAMP: {_text(value)[:40]!r}")
    try:
        return EPOCH + timedelta(microseconds=us)
    except OverflowError as exc:
        raise BadEntry(f"__REALTIME_TIMESTAMP out of range: {us}") from exc


def entry_record(entry: Mapping[str, Any], file: str | None, host: str | None) -> Record:
    """One journal entry, with values as text (or the converted values of systemd.journal).
    Fields of odd shapes are read as well as they can be; BadEntry when it has no usable time."""
    ts = _timestamp(entry.get("__REALTIME_TIMESTAMP")) if "__REALTIME_TIMESTAMP" in entry else EPOCH
    pid = _number(entry.get("_PID") or entry.get("SYSLOG_PID"))
    prio = _number(entry.get("PRIORITY"))
    message = _text(entry.get("MESSAGE"))
    rec = Record(
        ts=ts, source="journal", message=message.rstrip("\n"), raw=message, file=file,
        host=_text(entry.get("_HOSTNAME")) or host, cursor=_text(entry.get("__CURSOR")) or None,
        pid=pid, level=LEVELS.get(prio) if prio is not None else None,
    )
    for key in KEPT:
        if key in entry and (v := _text(entry[key])):
            rec.extra[key] = v
    if prog := rec.extra.get("SYSLOG_IDENTIFIER") or rec.extra.get("_COMM"):
        rec.extra["program"] = prog
    return rec


def open_reader(files: Iterable[Path | str] | None = None, directory: str | None = None):
    """A systemd.journal Reader over journal files, a journal directory, or the system's
    journal: every entry, in both modes (the catalogue decides what matters, so an archive and
    the live journal give the same events)."""
    from systemd import journal

    if files is not None:
        return journal.Reader(files=[str(f) for f in files])
    return journal.Reader(path=directory) if directory else journal.Reader()


def seek_after(reader, cursor: str) -> Mapping[str, Any] | None:
    """Go on after the entry a cursor names, and return it; if that entry is gone (vacuumed), at
    the first entry after where it was, so its successor is not skipped (None then). OSError:
    unusable cursor."""
    reader.seek_cursor(cursor)
    entry = reader.get_next()
    if entry and entry.get("__CURSOR") != cursor:
        reader.get_previous()
        return None
    return entry or None


def read_journal_files(files: Iterable[Path], host: str | None, cursor: str | None = None,
                       name: str | None = None, warn: Warn | None = None) -> Iterator[Record]:
    """Entries of binary journal files, interleaved in time order by systemd itself; `name` is
    what records give as their file (default: the file, or the folder of several)."""
    files = [str(f) for f in files]
    reader = open_reader(files)
    try:
        if cursor:
            seek_after(reader, cursor)
        name = name or (files[0] if len(files) == 1 else str(Path(files[0]).parent))
        entries = (record_or_skip(entry, name, host, warn) for entry in reader)
        yield from with_boot_marks(rec for rec in entries if rec is not None)
    finally:
        reader.close()


def record_or_skip(entry: Mapping[str, Any], file: str | None, host: str | None, warn: Warn | None) -> Record | None:
    try:
        return entry_record(entry, file, host)
    except BadEntry as exc:
        if warn is not None:
            warn(f"{file}: journal entry skipped: {exc}")
        return None


def read_export(stream: BinaryIO, file: str, host: str | None, warn: Warn | None = None) -> Iterator[Record]:
    """`journalctl -o export`, boot marks included (`BootMarks`)."""
    return with_boot_marks(_read_export(stream, file, host, warn))


def _read_export(stream: BinaryIO, file: str, host: str | None, warn: Warn | None = None) -> Iterator[Record]:
    """`journalctl -o export`: KEY=value lines, binary values length-prefixed, blank line ends
    an entry. A field is kept up to MAX_FIELD bytes, whatever size it claims."""
    entry: dict[str, Any] = {}
    while True:
        line = stream.readline(MAX_FIELD + 1)
        if not line:
            break
        if line == b"\n":
            if entry and (rec := record_or_skip(entry, file, host, warn)) is not None:
                yield rec
            entry = {}
            continue
        if not line.endswith(b"\n"):  # longer than the cap: keep the head, skip the rest
            _skip_line(stream)
        line = line.rstrip(b"\n")
        if b"=" in line:
            key, _, value = line.partition(b"=")
            entry[key.decode("ascii", "replace")] = value
        else:  # binary field: name, then little-endian 64-bit size, the data, a newline
            size_bytes = stream.read(8)
            if len(size_bytes) < 8:
                break
            (size,) = struct.unpack("<Q", size_bytes)
            entry[line.decode("ascii", "replace")] = stream.read(min(size, MAX_FIELD))
            if not _skip_bytes(stream, size - min(size, MAX_FIELD) + 1):
                break
    if entry and (rec := record_or_skip(entry, file, host, warn)) is not None:
        yield rec


def _skip_line(stream: BinaryIO) -> None:
    while (chunk := stream.readline(CHUNK)) and not chunk.endswith(b"\n"):
        pass


def _skip_bytes(stream: BinaryIO, n: int) -> bool:
    """Read past n bytes without holding them; False at the end of the stream."""
    while n > 0:
        chunk = stream.read(min(n, CHUNK))
        if not chunk:
            return False
        n -= len(chunk)
    return True


def read_json(stream: BinaryIO, file: str, host: str | None, warn: Warn) -> Iterator[Record]:
    """`journalctl -o json`, boot marks included (`BootMarks`)."""
    return with_boot_marks(_read_json(stream, file, host, warn))


def _read_json(stream: BinaryIO, file: str, host: str | None, warn: Warn) -> Iterator[Record]:
    """`journalctl -o json`: one object a line. A line over MAX_FIELD bytes, or one that is not a
    journal object (bad JSON, absurd nesting), is skipped with a warning."""
    n = 0
    while line := stream.readline(MAX_FIELD + 1):
        n += 1
        if not line.endswith(b"\n") and len(line) > MAX_FIELD:
            _skip_line(stream)
            warn(f"{file}:{n}: journal JSON entry longer than {MAX_FIELD >> 20} MiB, skipped")
            continue
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):
            warn(f"{file}:{n}: not a journal JSON object, skipped")
            continue
        if isinstance(entry, dict) and (rec := record_or_skip(entry, f"{file}:{n}", host, warn)) is not None:
            rec.file = file
            yield rec
