"""Journal entries as `Record`s: binary journal files (systemd.journal), the export format
(`journalctl -o export`) and `journalctl -o json` lines.

An entry keeps what the catalogue and attribution use: MESSAGE, the time, _HOSTNAME, _PID,
PRIORITY, SYSLOG_IDENTIFIER, _SYSTEMD_UNIT, and libvirt's own fields (LIBVIRT_SOURCE,
CODE_FUNC, LIBVIRT_CODE, LIBVIRT_DOMAIN), and its cursor.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from logsense.model import EPOCH, Record

KEPT = ("SYSLOG_IDENTIFIER", "_SYSTEMD_UNIT", "_COMM", "_EXE", "LIBVIRT_SOURCE", "CODE_FUNC",
        "CODE_FILE", "CODE_LINE", "LIBVIRT_CODE", "LIBVIRT_DOMAIN", "_TRANSPORT", "UNIT",
        "MESSAGE_ID", "_MACHINE_ID", "_BOOT_ID")
LEVELS = {0: "error", 1: "error", 2: "error", 3: "error", 4: "warning", 5: "info", 6: "info", 7: "debug"}


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):  # journal JSON: binary fields are byte arrays
        if value and all(isinstance(v, int) for v in value):
            return bytes(value).decode("utf-8", "replace")
        return _text(value[0]) if value else ""
    if value is None:
        return ""
    return str(value)


def entry_record(entry: Mapping[str, Any], file: str | None, host: str | None) -> Record:
    """One journal entry, with values as text (or the converted values of systemd.journal)."""
    ts_value = entry.get("__REALTIME_TIMESTAMP")
    if isinstance(ts_value, datetime):
        ts = ts_value if ts_value.tzinfo else ts_value.replace(tzinfo=UTC)
        ts = ts.astimezone(UTC)
    else:
        try:
            ts = EPOCH + timedelta(microseconds=int(_text(ts_value)))
        except ValueError:
            ts = EPOCH
    pid = _text(entry.get("_PID") or entry.get("SYSLOG_PID"))
    prio = _text(entry.get("PRIORITY"))
    message = _text(entry.get("MESSAGE"))
    rec = Record(
        ts=ts, source="journal", message=message.rstrip("\n"), raw=message, file=file,
        host=_text(entry.get("_HOSTNAME")) or host, cursor=_text(entry.get("__CURSOR")) or None,
        pid=int(pid) if pid.isdigit() else None,
        level=LEVELS.get(int(prio)) if prio.isdigit() else None,
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


def seek_after(reader, cursor: str) -> None:
    """Go on after the entry a cursor names; if that entry is gone (vacuumed), at the first
    entry after where it was, so its successor is not skipped. OSError: unusable cursor."""
    reader.seek_cursor(cursor)
    entry = reader.get_next()
    if entry and entry.get("__CURSOR") != cursor:
        reader.get_previous()


def read_journal_files(files: Iterable[Path], host: str | None, cursor: str | None = None,
                       name: str | None = None) -> Iterator[Record]:
    """Entries of binary journal files, interleaved in time order by systemd itself; `name` is
    what records give as their file (default: the file, or the folder of several)."""
    files = [str(f) for f in files]
    reader = open_reader(files)
    try:
        if cursor:
            seek_after(reader, cursor)
        name = name or (files[0] if len(files) == 1 else str(Path(files[0]).parent))
        for entry in reader:
            yield entry_record(entry, name, host)
    finally:
        reader.close()


def read_export(stream: BinaryIO, file: str, host: str | None) -> Iterator[Record]:
    """`journalctl -o export`: KEY=value lines, binary values length-prefixed, blank line ends
    an entry."""
    entry: dict[str, Any] = {}
    while True:
        line = stream.readline()
        if not line:
            break
        if line == b"\n":
            if entry:
                yield entry_record(entry, file, host)
            entry = {}
            continue
        line = line.rstrip(b"\n")
        if b"=" in line:
            key, _, value = line.partition(b"=")
            entry[key.decode("ascii", "replace")] = value
        else:  # binary field: name, then little-endian 64-bit size, the data, a newline
            size_bytes = stream.read(8)
            if len(size_bytes) < 8:
                break
            (size,) = struct.unpack("<Q", size_bytes)
            entry[line.decode("ascii", "replace")] = stream.read(size)
            stream.read(1)
    if entry:
        yield entry_record(entry, file, host)


def read_json(stream: BinaryIO, file: str, host: str | None, warn) -> Iterator[Record]:
    """`journalctl -o json`: one object a line."""
    for n, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            warn(f"{file}:{n}: not a journal JSON object, skipped")
            continue
        if isinstance(entry, dict):
            yield entry_record(entry, file, host)
