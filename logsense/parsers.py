"""Turn the lines of one log file into `Record`s: timestamps, host, pid, level, message.

One parser class per format, each stateful per file (QEMU lines without a timestamp take the
last one seen; libvirtd continuation lines take their header's). `detect_format` picks the
parser from a file's first lines and its path, never from a flag.

Real samples each parser is tested on (tests/test_parsers.py):

    libvirtd:  2024-03-05 10:11:12.345+0000: 1234: error : qemuProcessReportLogError:1971 : msg
    qemu:      2024-03-05T10:11:12.345678Z qemu-system-x86_64: cannot set up guest memory ...
               qemu-system-x86_64: -drive file=...: Could not open '...': Permission denied
    syslog:    Mar  5 10:11:12 kvm01 kernel: [12345.678901] Out of memory: Killed process 28932
               2024-03-05T10:11:12.345678+00:00 kvm01 libvirtd[1234]: internal error: ...
               [Tue Mar  5 10:11:12 2024] kvm: disabled by bios            (dmesg -T)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Protocol

from logsense.model import EPOCH, Record

MAX_LINE = 1 << 20  # longer lines are cut to this many bytes and counted in stats

MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}

LIBVIRTD_RE = re.compile(
    r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?[+-]\d{4}): (\d+): (debug|info|warning|error) : "
    r"(?:([\w.]+):(\d+) : )?(.*)", re.S)
# libvirt's own stamp, also at the start of the QEMU log's header and shutdown lines
LIBVIRT_TS_RE = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?[+-]\d{4}): (.*)", re.S)
# QEMU's `-msg timestamp=on`
QEMU_TS_RE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)) (.*)", re.S)
BSD_TS = r"([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d\d:\d\d:\d\d)(\.\d+)?"
ISO_TS = r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
PROG = r"([^\s\[:]+)(?:\[(\d+)\])?: ?(.*)"
SYSLOG_BSD_RE = re.compile(rf"{BSD_TS} (\S+) {PROG}", re.S)
SYSLOG_ISO_RE = re.compile(rf"{ISO_TS} (\S+) {PROG}", re.S)
SYSLOG_5424_RE = re.compile(
    r"<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) (?:-|\[.*?\]) ?(.*)", re.S)
DMESG_T_RE = re.compile(r"\[[A-Z][a-z]{2} ([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d\d:\d\d:\d\d) (\d{4})\] (.*)", re.S)
DMESG_RE = re.compile(r"\[\s*(\d+\.\d+)\] (.*)", re.S)
UPTIME_RE = re.compile(r"\[\s*(\d+\.\d+)\] ")
# libvirtd's own syslog output: "<thread>: <level> : <function>:<line> : <message>"
LIBVIRT_SYSLOG_RE = re.compile(r"(\d+): (debug|info|warning|error) : (?:([\w.]+):(\d+) : )?(.*)", re.S)
JOURNAL_META_RE = re.compile(r"-- (?:Logs begin|Journal begins|Boot |No entries|Reboot)")
QEMU_PROGRAM_RE = re.compile(r"(?:\S*/)?qemu-(?:system-[\w-]+|kvm)(?=:)")
GUEST_RE = re.compile(r"-name (?:guest=)?([^,\s]+)")
UUID_RE = re.compile(r"-uuid ([0-9a-fA-F-]{36})")
PID_FILE_RE = re.compile(r"-pidfile (\S+)")


@dataclass
class FileContext:
    """What a parser knows about the file beyond its lines."""

    file: str | None
    host: str | None = None
    tz: tzinfo = UTC
    year: int = 1970  # year of the file's newest line (mtime or --year)
    month: int = 12  # month of the file's newest line: later months belong to the year before
    vm: str | None = None  # QEMU logs: the VM named by the file
    source: str | None = None  # overrides the parser's source name (journalctl text)
    stats: dict[str, int] = field(default_factory=dict)

    def count(self, key: str, n: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + n


def _bsd_time(ctx: FileContext, mon: str, day: str, hms: str, frac: str | None) -> datetime | None:
    month = MONTHS.get(mon)
    if month is None:
        return None
    year = ctx.year - 1 if month > ctx.month else ctx.year
    try:
        local = datetime(year, month, int(day), int(hms[0:2]), int(hms[3:5]), int(hms[6:8]),
                         int((frac or ".0")[1:7].ljust(6, "0")), tzinfo=ctx.tz)
    except ValueError:
        return None
    return _utc(local)


def _iso_time(text: str, ctx: FileContext) -> datetime | None:
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=ctx.tz)
    return _utc(ts)


def _utc(ts: datetime) -> datetime | None:
    """In UTC; None for a stamp at the edges of the calendar (year 1, year 9999 at -23:59): it has
    no UTC, or no room for the windows and horizons added to it later."""
    try:
        utc = ts.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    return utc if 2 <= utc.year <= 9998 else None


def _ts_state(ts: datetime) -> dict[str, Any]:
    return {"ts": ts.isoformat()} if ts is not EPOCH else {}


def _saved_ts(state: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(state["ts"])
    except (KeyError, TypeError, ValueError):
        return None


class LineParser(Protocol):
    """What every per-file parser offers, so the line reader needs no switch on its type."""

    source: str
    ctx: FileContext

    @property
    def holding(self) -> bool:
        """A multi-line record is begun and not finished."""

    def parse(self, text: str, lineno: int) -> Record | None:
        """The record a line completes, if any."""

    def flush(self) -> Record | None:
        """The record held back, at the end of the input or after a quiet time."""

    def state(self) -> dict[str, Any]:
        """What a resume needs to parse the lines after this one (plain JSON values)."""

    def restore(self, state: dict[str, Any]) -> None:
        """Take back `state()`."""


class LibvirtdParser:
    """libvirtd.log / virtqemud.log: `<ts>: <pid>: <level> : <function>:<line> : <message>`.

    Lines without the header continue the record before them (debug logs print multi-line
    JSON and command lines); they take its time, pid and level.
    """

    source = "libvirtd"
    holding = False  # every line is a record of its own: nothing is held back

    def __init__(self, ctx: FileContext) -> None:
        self.ctx = ctx
        self.last: Record | None = None

    def flush(self) -> Record | None:
        return None

    def state(self) -> dict[str, Any]:
        last = self.last
        return {"ts": last.ts.isoformat(), "pid": last.pid, "level": last.level} if last else {}

    def restore(self, state: dict[str, Any]) -> None:
        if (ts := _saved_ts(state)) is not None:
            self.last = Record(ts=ts, source=self.source, message="", pid=state.get("pid"),
                               level=state.get("level"))

    def before_selected(self, buf: bytes, start: int, lineno: int) -> None:
        """The fast path picked a line: a continuation line needs its header first."""
        if not LIBVIRTD_RE.match(buf[start:start + 64].decode("utf-8", "replace")):
            _find_header(self, buf, start, lineno)

    def parse(self, text: str, lineno: int) -> Record | None:
        m = LIBVIRTD_RE.match(text)
        if m:
            ts = _iso_time(m.group(1), self.ctx)
            if ts is not None:
                rec = Record(ts=ts, source=self.source, message=m.group(6), raw=text, host=self.ctx.host,
                             file=self.ctx.file, line=lineno, pid=int(m.group(2)), level=m.group(3))
                if m.group(4):
                    rec.extra["function"] = m.group(4)
                self.last = rec
                return rec
        if not text.strip():
            return None
        prev = self.last
        return Record(ts=prev.ts if prev else EPOCH, source=self.source, message=text, raw=text,
                      host=self.ctx.host, file=self.ctx.file, line=lineno,
                      pid=prev.pid if prev else None, level=prev.level if prev else None,
                      parsed=prev is not None)


class QemuLogParser:
    """A per-VM QEMU log written by libvirt/virtlogd (`/var/log/libvirt/qemu/NAME.log`).

    The VM is the file's name; the command line (continuation lines ending in `\\`) is one
    record that yields `guest=NAME`, `-uuid` and the pid file; QEMU's own lines carry a stamp
    only with `-msg timestamp=on` and otherwise take the last stamp seen.
    """

    source = "qemu"

    def __init__(self, ctx: FileContext) -> None:
        self.ctx = ctx
        self.last_ts: datetime = EPOCH
        self.pending: list[str] = []
        self.pending_line = 0

    @property
    def holding(self) -> bool:
        """Inside a command line: a resume must start again at its first line."""
        return bool(self.pending)

    def state(self) -> dict[str, Any]:
        return _ts_state(self.last_ts)

    def restore(self, state: dict[str, Any]) -> None:
        if (ts := _saved_ts(state)) is not None:
            self.last_ts = ts

    def drop(self) -> None:
        """Forget a command line begun before the point reading starts at."""
        self.pending = []

    def _record(self, ts: datetime, message: str, raw: str, lineno: int, parsed: bool = True) -> Record:
        return Record(ts=ts, source=self.source, message=message, raw=raw, host=self.ctx.host,
                      file=self.ctx.file, line=lineno, vm=self.ctx.vm, parsed=parsed)

    def parse(self, text: str, lineno: int) -> Record | None:
        if self.pending or (text.endswith("\\") and not self.pending and "=" in text):
            return self._command_line(text, lineno)
        if not text.strip():
            return None
        m = LIBVIRT_TS_RE.match(text) or QEMU_TS_RE.match(text)
        if m:
            ts = _iso_time(m.group(1), self.ctx)
            if ts is not None:
                self.last_ts = ts
                rec = self._record(ts, m.group(2), text, lineno)
                if m.re is LIBVIRT_TS_RE and (host := re.search(r"hostname: (\S+)", m.group(2))):
                    rec.extra["hostname"] = host.group(1)
                return rec
        rec = self._record(self.last_ts, text, text, lineno, parsed=self.last_ts is not EPOCH)
        if QEMU_PROGRAM_RE.match(text) and "warning:" not in text:
            rec.level = "error"
        return rec

    def _command_line(self, text: str, lineno: int) -> Record | None:
        if not self.pending:
            self.pending_line = lineno
        self.pending.append(text.rstrip("\\").strip())
        if text.endswith("\\"):
            return None
        return self.flush()

    def flush(self) -> Record | None:
        """The command line held back, if the file ended inside it."""
        if not self.pending:
            return None
        cmd = " ".join(self.pending)
        self.pending = []
        rec = self._record(self.last_ts, cmd, cmd, self.pending_line)
        rec.level = "info"
        rec.extra["command_line"] = True
        if m := GUEST_RE.search(cmd):
            rec.extra["guest"] = m.group(1)
            rec.vm = rec.vm or m.group(1)
        if m := UUID_RE.search(cmd):
            rec.extra["uuid"] = m.group(1).lower()
        disks = re.findall(r"(?:\"filename\":\"|file=)([^\",]+)", cmd)
        if disks:
            rec.extra["disks"] = disks
        return rec


class SyslogParser:
    """Syslog files and `journalctl` text output, and the kernel ring buffer as dmesg prints it.

    RFC 3164 stamps carry no year or zone: the year is the file's (from its mtime, or --year)
    and a month later than the file's newest belongs to the year before (New Year rollover);
    the zone is --tz. Kernel uptime stamps `[12345.678901]` are kept as the `uptime` field.
    """

    source = "syslog"
    holding = False

    def __init__(self, ctx: FileContext) -> None:
        self.ctx = ctx
        self.last_ts: datetime = EPOCH

    def flush(self) -> Record | None:
        return None

    def state(self) -> dict[str, Any]:
        return _ts_state(self.last_ts)

    def restore(self, state: dict[str, Any]) -> None:
        if (ts := _saved_ts(state)) is not None:
            self.last_ts = ts

    def before_selected(self, buf: bytes, start: int, lineno: int) -> None:
        """Syslog lines stand alone."""

    def parse(self, text: str, lineno: int) -> Record | None:
        ctx = self.ctx
        ts = host = prog = pid = None
        message = text
        if m := SYSLOG_BSD_RE.match(text):
            ts = _bsd_time(ctx, m.group(1), m.group(2), m.group(3), m.group(4))
            host, prog, pid, message = m.group(5), m.group(6), m.group(7), m.group(8)
        elif m := SYSLOG_ISO_RE.match(text):
            ts = _iso_time(m.group(1), ctx)
            host, prog, pid, message = m.group(2), m.group(3), m.group(4), m.group(5)
        elif m := SYSLOG_5424_RE.match(text):
            ts = _iso_time(m.group(2), ctx)
            host, prog, message = m.group(3), m.group(4), m.group(7)
            pid = m.group(5) if m.group(5).isdigit() else None
        elif m := DMESG_T_RE.match(text):
            ts = _bsd_time(FileContext(None, tz=ctx.tz, year=int(m.group(4)), month=12),
                           m.group(1), m.group(2), m.group(3), None)
            prog, message = "kernel", m.group(5)
        elif JOURNAL_META_RE.match(text) or not text.strip():
            return None
        if ts is None:
            return Record(ts=self.last_ts, source=ctx.source or self.source, message=text, raw=text,
                          host=ctx.host, file=ctx.file, line=lineno, parsed=False)
        self.last_ts = ts
        rec = Record(ts=ts, source=ctx.source or self.source, message=message, raw=text,
                     host=host if host and host != "-" else ctx.host, file=ctx.file, line=lineno,
                     pid=int(pid) if pid else None)
        rec.extra["program"] = prog
        if prog == "kernel" and (u := UPTIME_RE.match(message)):
            rec.extra["uptime"] = float(u.group(1))
            rec.message = message[u.end():]
        elif (m := LIBVIRT_SYSLOG_RE.match(message)) and prog and prog.startswith(("libvirtd", "virt")):
            rec.level, rec.message = m.group(2), m.group(5)
            if m.group(3):
                rec.extra["function"] = m.group(3)
        return rec


class PlainDmesgParser(SyslogParser):
    """`dmesg` without -T: only uptime stamps, so every line takes the file's mtime."""

    def parse(self, text: str, lineno: int) -> Record | None:
        m = DMESG_RE.match(text)
        if not m:
            return super().parse(text, lineno)
        ts = datetime(self.ctx.year, self.ctx.month, 1, tzinfo=UTC) if self.last_ts is EPOCH else self.last_ts
        rec = Record(ts=ts, source=self.source, message=m.group(2), raw=text, host=self.ctx.host,
                     file=self.ctx.file, line=lineno)
        rec.extra.update(program="kernel", uptime=float(m.group(1)))
        return rec


# -- pasted console text -------------------------------------------------------------------
# What wraps a line of pasted text before the log line itself: a docker-compose service
# (`libvirt_1  | `), a CI runner's elapsed time (`00:01:36.367  `), a quote marker (`> `).
CONSOLE_LINE_PREFIX_RE = re.compile(r"(?:[\w.-]+_\d+\s+\| ?|\d\d:\d\d:\d\d\.\d{3}\s+|> ?|\s+)")
# A message pasted inside one line: test output with `\n` escapes or HTML's `&#10;`.
CONSOLE_SPLIT_RE = re.compile(r"\\n|&#10;|&#x0?[aA];")
# A wall-clock stamp at a line's start that no log format claims (Python logging, nova, CI).
CONSOLE_TS_RE = re.compile(r"(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)(?:[.,](\d+))?(Z|[+-]\d\d:?\d\d)?[\s,|-]+(.*)", re.S)
# Wrappers around a libvirt message: the client's `error: `, virt-install's `ERROR    `,
# python's `libvirt.libvirtError: `, a `libvirt: QEMU Driver error : ` line, the function:line prefix.
CONSOLE_UNWRAP_RES = [
    re.compile(r"(?:warning: )?(?:error|errore|erreur|Fehler|ERROR)(?:\s*:\s*|\s{2,})(?=\S)"),
    re.compile(r"[\w.]*[Ll]ibvirtError: "),
    re.compile(r"libvirt?: (?:[\w /-]+ )?error : "),
    re.compile(r"[A-Za-z_]\w*:\d+ : "),
    re.compile(r"(?:libvirtd|virt\w*d|systemd|kernel|dnsmasq[\w-]*)(?:\[\d+\])?: "),  # a pasted journal line's tag
]
# Go and Python bindings print `virError(Code=1, Domain=10, Message='...')`: the message is inside.
BINDING_ERROR_RE = re.compile(r"\b\w*Error\(Code=-?\d+, Domain=-?\d+, Message='")
QEMU_LINE_RE = re.compile(r"(?:\S*/)?qemu-(?:system-[\w-]+|kvm|img|nbd):")
KERNEL_LINE_RE = re.compile(r"audit|apparmor=|\bavc: |type=AVC|kernel:")
# Words some line of a paste about a KVM problem has; a text without any (notes, a README) is not read
CONSOLE_HINT_RE = re.compile(
    r"(?i)\b(?:error|errore|fail(?:ed|ure)?|denied|cannot|unable|not permitted|timed out|qemu|libvirt\w*|virsh"
    r"|kvm|domain|avc|apparmor|traceback|exception|panic|oops|segfault)\b")
HINT_BYTES = 64 * 1024
HINT_LINES = 200  # or one of its first lines is a message the catalogue knows
CONSOLE_BUFFER = 1000  # untimed lines held waiting for a timed line to give them a time


def unwrap_console_message(text: str) -> str:
    """The libvirt/QEMU message inside a pasted line, with the known wrappers taken off."""
    msg = text.strip()
    if m := BINDING_ERROR_RE.search(msg):
        inner = msg[m.end():]
        end = inner.rfind("')")
        msg = inner[:end] if end >= 0 else inner
    changed = True
    while changed:
        changed = False
        for rx in CONSOLE_UNWRAP_RES:
            if m := rx.match(msg):
                msg, changed = msg[m.end():], True
    return msg


class ConsoleParser:
    """Text pasted from a terminal, a dialog or a CI log: `virsh` errors, virt-manager
    tracebacks, `systemctl status` blocks, `journalctl -o cat`, binding errors.

    Real samples (fixtures/real/*/virsh.txt):

        error: Failed to start domain alma-8-hello
        Error starting domain: Cannot access storage file '/home/t/ESP.qcow2' (as uid:64055, gid:109): Permission denied
        (openshift) Failed to start: virError(Code=1, Domain=10, Message='internal error: ...')
        libvirt_1  | libvirt: Storage Driver error : Storage pool not found: no storage pool with matching name 'x'
        00:01:36.367  ioctl(KVM_CREATE_VM) failed: 12 Cannot allocate memory

    Every non-empty line becomes a record, split where the paste holds `\n` escapes. Lines
    with a log stamp are read by that log's parser; the others take the time of the nearest
    stamped line of the file, or, when the file has none, are `untimed` (ts is EPOCH). The
    source is guessed from the text (QEMU's program name, audit/kernel words, else libvirtd);
    classification tries the other sources too (`Record.extra["pasted"]`).
    """

    source = "libvirtd"

    def __init__(self, ctx: FileContext) -> None:
        self.ctx = ctx
        self.libvirtd = LibvirtdParser(ctx)
        self.syslog = SyslogParser(ctx)
        self.last_ts: datetime | None = None
        self.waiting: list[Record] = []  # untimed records before the file's first stamp

    @property
    def holding(self) -> bool:
        return bool(self.waiting)

    def state(self) -> dict[str, Any]:
        return {}  # pasted text is read whole, never followed

    def restore(self, state: dict[str, Any]) -> None:
        pass

    def parse(self, text: str, lineno: int) -> list[Record]:
        """The records of one line (several when the paste joined lines with escaped newlines)."""
        return self.feed(text, lineno)

    def feed(self, text: str, lineno: int) -> list[Record]:
        """The records of one line (several when the paste joined lines with `\\n`)."""
        line = text
        while (m := CONSOLE_LINE_PREFIX_RE.match(line)) and m.end() < len(line):
            line = line[m.end():]
        if not line.strip():
            return []
        if (rec := self._stamped(line, lineno)) is not None:
            self.last_ts = rec.ts
            out, self.waiting = [*self.waiting, rec], []
            for w in out[:-1]:
                w.ts, w.untimed = rec.ts, False
            return out
        out = []
        for piece in CONSOLE_SPLIT_RE.split(line):
            if not piece.strip():
                continue
            rec = self._untimed(piece, text, lineno)
            if self.last_ts is not None:
                rec.ts, rec.untimed = self.last_ts, False
                out.append(rec)
            else:
                self.waiting.append(rec)
        if len(self.waiting) > CONSOLE_BUFFER:
            out, self.waiting = self.waiting + out, []
        return out

    def flush(self) -> list[Record]:
        """Untimed records still held at the end of the file: it carries no time at all."""
        out, self.waiting = self.waiting, []
        return out

    def _stamped(self, line: str, lineno: int) -> Record | None:
        if LIBVIRTD_RE.match(line):
            return self.libvirtd.parse(line, lineno)
        if SYSLOG_BSD_RE.match(line) or SYSLOG_ISO_RE.match(line) or DMESG_T_RE.match(line):
            rec = self.syslog.parse(line, lineno)
            return rec if rec is not None and rec.parsed else None
        m = QEMU_TS_RE.match(line) or LIBVIRT_TS_RE.match(line)
        if m and (ts := _iso_time(m.group(1), self.ctx)) is not None:
            rec = self._untimed(m.group(2), line, lineno)
            rec.ts, rec.untimed = ts, False
            return rec
        if (m := CONSOLE_TS_RE.match(line)) is not None:
            stamp = f"{m.group(1)}.{(m.group(2) or '0')[:6]}{m.group(3) or ''}"
            if (ts := _iso_time(stamp.replace("T", " "), self.ctx)) is not None:
                rec = self._untimed(m.group(4), line, lineno)
                rec.ts, rec.untimed = ts, False
                return rec
        return None

    def _untimed(self, text: str, raw: str, lineno: int) -> Record:
        msg = unwrap_console_message(text)
        source = "qemu" if QEMU_LINE_RE.match(msg) else "syslog" if KERNEL_LINE_RE.search(msg) else "libvirtd"
        rec = Record(ts=EPOCH, source=source, message=msg, raw=raw, host=self.ctx.host, file=self.ctx.file,
                     line=lineno, untimed=True)
        rec.extra["pasted"] = True
        if msg != text.strip() or re.search(r"\berror\b", text, re.I):
            rec.level = "error"
        return rec


def console_format(path: str, head: bytes, fmt: str | None, explicit: bool,
                   knows: Callable[[str], bool] | None = None) -> str | None:
    """The format of a file named on the command line when pasted text may be in it: "console"
    for a text file no log format claims that speaks of trouble (`knows`: the catalogue knows one
    of its first lines), and for a `.txt` file whose QEMU lines are pasted
    (outside `qemu/` they name no VM); else `fmt` unchanged. Files found by walking a folder
    keep `fmt`: a tree's notes and command outputs are not its logs."""
    if not explicit:
        return fmt
    if fmt is None and looks_like_text(head):
        text = head[:HINT_BYTES].decode("utf-8", "replace")
        if CONSOLE_HINT_RE.search(text) or knows is not None and any(
                knows(unwrap_console_message(line)) for line in text.splitlines()[:HINT_LINES] if line.strip()):
            return "console"
    if fmt == "qemu" and path.endswith(".txt") and "/qemu/" not in f"/{path}":
        return "console"
    return fmt


def looks_like_text(head: bytes) -> bool:
    """Mostly printable UTF-8: pasted text, not a binary or a compressed file left undecoded."""
    sample = head[:8192]
    if not sample.strip() or b"\x00" in sample:
        return False
    text = sample.decode("utf-8", "replace")
    bad = sum(1 for c in text if c == "\ufffd" or (ord(c) < 32 and c not in "\t\n\r\x1b"))
    return bad <= len(text) // 50


LINE_PARSERS: dict[str, type] = {
    "libvirtd": LibvirtdParser, "qemu": QemuLogParser, "syslog": SyslogParser, "dmesg": PlainDmesgParser,
    "console": ConsoleParser,
}
# formats whose lines stand alone, so the fast path may parse only candidate lines
STATELESS = {"libvirtd", "syslog"}


def detect_format(path: str, head: bytes) -> str | None:
    """Name of the format of a file, from its first bytes and its path; None if not a log."""
    if head.startswith(b"LPKSHHRH"):
        return "journal-file"
    lines = [ln for ln in head.decode("utf-8", "replace").splitlines()[:40] if ln.strip()]
    name = path.rsplit("/", 1)[-1]
    if any(ln.startswith("__CURSOR=") or ln.startswith("__REALTIME_TIMESTAMP=") for ln in lines[:5]):
        return "journal-export"
    if lines and lines[0].startswith("{") and '"__REALTIME_TIMESTAMP"' in lines[0]:
        return "journal-json"
    votes: dict[str, int] = {}
    for ln in lines:
        if LIBVIRTD_RE.match(ln):
            fmt = "libvirtd"
        elif LIBVIRT_TS_RE.match(ln) or QEMU_TS_RE.match(ln) and " qemu-" in ln[:60]:
            fmt = "qemu"
        elif ln.startswith(("LC_ALL=", "/usr/bin/qemu", "/usr/libexec/qemu")) or QEMU_PROGRAM_RE.match(ln):
            fmt = "qemu"
        elif SYSLOG_BSD_RE.match(ln) or SYSLOG_ISO_RE.match(ln) or SYSLOG_5424_RE.match(ln) \
                or DMESG_T_RE.match(ln):
            fmt = "syslog"
        elif DMESG_RE.match(ln):
            fmt = "dmesg"
        else:
            continue
        votes[fmt] = votes.get(fmt, 0) + 1
    if "/qemu/" in f"/{path}" and name.split(".log")[0] and ".log" in name and votes.get("qemu"):
        return "qemu"
    if not votes:
        if "/qemu/" in f"/{path}" and ".log" in name:
            return "qemu"  # an empty or header-less VM log is still that VM's log
        return None
    return max(votes, key=lambda k: votes[k])


HOSTNAME_LINE_RE = re.compile(r"(?:: info : |, )hostname: ([\w.-]+)")


def host_hint(fmt: str, head: bytes) -> str | None:
    """The host a file's first lines name: a syslog line's host field, or the `hostname:` that
    libvirtd and the QEMU log header print."""
    text = head[:16384].decode("utf-8", "replace")
    if fmt == "syslog":
        for line in text.splitlines()[:20]:
            if (m := SYSLOG_BSD_RE.match(line)) and m.group(5):
                return m.group(5)
            if (m := SYSLOG_ISO_RE.match(line)) and m.group(2):
                return m.group(2)
    elif fmt in ("libvirtd", "qemu") and (m := HOSTNAME_LINE_RE.search(text)):
        return m.group(1).split(".")[0]
    return None


def is_journal_text(path: str, head: bytes) -> bool:
    """journalctl's text output (sosreport's journalctl_*), read as syslog lines of source journal."""
    name = path.rsplit("/", 1)[-1]
    return name.startswith("journalctl") or bool(JOURNAL_META_RE.match(head.decode("utf-8", "replace")))


Selector = Callable[[bytes], list[tuple[int, int]]]


def decode_line(raw: bytes, ctx: FileContext) -> str:
    """One line's text: cut to MAX_LINE bytes (counted), NULs dropped, invalid UTF-8 replaced."""
    if len(raw) > MAX_LINE:
        ctx.count("long_lines")
        raw = raw[:MAX_LINE]
    if b"\x00" in raw:
        raw = raw.replace(b"\x00", b"")
    return raw.decode("utf-8", "replace").rstrip("\r")


def _find_header(parser: LibvirtdParser, buf: bytes, start: int, lineno: int) -> None:
    """Give a selected continuation line the header line above it (bounded look-back)."""
    pos = start
    for back in range(1, 200):
        if pos <= 0:
            return
        prev = buf.rfind(b"\n", 0, pos - 1) + 1
        text = buf[prev:pos - 1].decode("utf-8", "replace")
        if LIBVIRTD_RE.match(text):
            parser.parse(text, lineno - back)
            return
        pos = prev
