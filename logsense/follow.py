"""Follow live sources: log files as they grow, rotate and come and go, and the journal.

A `Tailer` owns one path: an open descriptor, the file's identity (device, inode and a
fingerprint of its first bytes, so a reused inode is not mistaken for the same file), the
offset of the first byte not yet handed out as a complete line, and the parser that keeps
the file's context. A line without its newline yet stays in the file until it is complete.
When the path is rotated away (renamed, or deleted and created anew) the old file is not
finished at once: a writer keeps appending to it until it reopens its log (rsyslog at
logrotate's postrotate HUP), so it stays open beside the new one, read under its rotated
name, until it has been quiet for `ROTATED_GRACE` seconds.
`Watcher` turns inotify events (watchdog) into a set of paths to look at; nothing polls while
the logs are idle. `JournalFollower` reads the journal in a thread with `wait()`.
Nothing here classifies or correlates: it yields `Record`s.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import fnmatch
import hashlib
import os
import queue
import select
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from logsense import journal, parsers
from logsense.model import EPOCH, Record
from logsense.sources import COMPRESSED, DATE_SUFFIX, NUM_SUFFIX

FP_BYTES = 1024  # the head fingerprint covers the first min(size, FP_BYTES) bytes
READ_BYTES = 1 << 20  # per file per pass, so one busy file cannot starve the others
ROTATED_GRACE = 5.0  # seconds a rotated file must be quiet, with the new one in place, to be finished
SKIP_SUFFIXES = (".journal", ".journal~", ".xml", ".tmp", ".swp", ".pos", ".lock", ".pid", ".sock")
Warn = Callable[[str], None]


class Waker:
    """Wakes the daemon's loop from threads and from signal handlers: a self-pipe, because a
    handler that took a lock (threading.Event) could deadlock with the very thread it runs in."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def set(self) -> None:
        with contextlib.suppress(BlockingIOError):  # full: a wake-up is pending anyway
            os.write(self.w, b"x")

    def wait(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.r], [], [], timeout)
        return bool(ready)

    def clear(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self.r, 4096):
                pass


def _fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Identity:
    dev: int
    ino: int
    fp: str  # sha256 of the first fp_len bytes
    fp_len: int

    def to_json(self) -> dict[str, Any]:
        return {"dev": self.dev, "ino": self.ino, "fp": self.fp, "fp_len": self.fp_len}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Identity:
        return cls(int(d["dev"]), int(d["ino"]), str(d["fp"]), int(d["fp_len"]))

    @classmethod
    def of(cls, fd: int) -> Identity:
        st = os.fstat(fd)
        head = os.pread(fd, FP_BYTES, 0)
        return cls(st.st_dev, st.st_ino, _fingerprint(head), len(head))

    def matches(self, fd: int) -> bool:
        """Same device and inode, and the file still starts with the bytes fingerprinted."""
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (self.dev, self.ino):
            return False
        return self.head_matches(fd)

    def head_matches(self, fd: int) -> bool:
        head = os.pread(fd, self.fp_len, 0)
        return len(head) == self.fp_len and _fingerprint(head) == self.fp

    def grow(self, fd: int) -> None:
        """While the file is smaller than FP_BYTES its fingerprint covers what there is."""
        if self.fp_len < FP_BYTES:
            head = os.pread(fd, FP_BYTES, 0)
            if len(head) > self.fp_len:
                self.fp, self.fp_len = _fingerprint(head), len(head)


def is_log_name(name: str) -> bool:
    """A live log file's name, not a rotated, compressed or foreign one."""
    if name.startswith(".") or name.endswith(SKIP_SUFFIXES) or name.endswith(tuple(COMPRESSED)):
        return False
    return not (NUM_SUFFIX.match(name) or DATE_SUFFIX.match(name))


@dataclass
class FileOptions:
    host: str | None
    tz: tzinfo
    year: int | None = None
    rotated_grace: float = ROTATED_GRACE


class Tailer:
    """One followed path (see the module docstring). `rotated` holds the files rotated away
    from it that are still read, oldest first: each a Tailer of its own, named as it is now."""

    def __init__(self, path: str, opts: FileOptions, warn: Warn) -> None:
        self.path = path
        self.name = path  # the name records carry: the path, or a rotated file's rotated name
        self.opts = opts
        self.warn = warn
        self._warned: dict[str, str] = {}  # path -> what was said about it
        self.fd: int | None = None
        self.ident: Identity | None = None
        self.offset = 0  # bytes before this were handed out as complete lines
        self.lineno = 1  # number of the line starting at offset
        self.safe = (0, 1)  # (offset, lineno) where the parser holds nothing back: what is saved
        self.fmt: str | None = None
        self.ignored = False  # content that is not a log format logsense knows
        self.parser: Any = None
        self.ctx: parsers.FileContext | None = None
        self.skipping = False
        self.lines_read = 0
        self.bytes_read = 0  # of complete lines, as lines_read (for the metrics)
        self.rotated: list[Tailer] = []
        self.live = False  # at the last poll the descriptor was the file at the path
        self.size_seen = -1  # a rotated file's size when last seen grown, and when (monotonic)
        self.grown_at = 0.0

    # -- opening and resuming -------------------------------------------------------------
    def open(self, at_end: bool) -> bool:
        """Open the file at its start or its end; False if it is not there (or unreadable)."""
        fd = self._open_fd(self.path)
        if fd is None:
            return False
        self._attach(fd)
        if at_end:
            self._seek_end()
        return True

    def resume(self, saved: dict[str, Any]) -> None:
        """Continue where a previous run stopped: the same file at the saved offset, or, if it
        was rotated meanwhile, the rest of the old file (found by its identity beside it, and
        read as any rotated file is) and the new one from its start. Rotated files that were
        still read at the save are found the same way."""
        for entry in saved.get("rotated") or []:
            if not self._resume_rotated(entry):
                self.warn(f"{self.path}: a rotated file still being read is gone; "
                          "what it got after the last save is lost")
        if "identity" not in saved and self.rotated:  # saved while the path named no file
            self.open(at_end=False)
            return
        try:
            ident = Identity.from_json(saved["identity"])
            offset, lineno = int(saved["offset"]), int(saved["line"])
        except (KeyError, TypeError, ValueError):
            self.warn(f"{self.path}: saved position unusable; reading the file from its start")
            self.open(at_end=False)
            return
        fd = self._open_fd(self.path, quiet=True)
        if fd is not None and ident.matches(fd):
            self._attach(fd, ident)
            self._resume_at(offset, lineno, saved.get("context"))
            return
        if not self._resume_rotated(saved):
            self.warn(f"{self.path}: replaced while logsense was stopped and the old file is gone; "
                      "reading the new one from its start")
        if fd is not None:
            self._attach(fd)

    def resume_rotated(self, saved: dict[str, Any]) -> bool:
        """For a path that names no file now: only the files rotated away from it, if any is
        found beside it (the new file is read from its start when it appears)."""
        found = [self._resume_rotated(entry) for entry in (*(saved.get("rotated") or []), saved)]
        return any(found)

    def _resume_at(self, offset: int, lineno: int, context: dict[str, Any] | None) -> None:
        assert self.fd is not None
        if os.fstat(self.fd).st_size < offset:
            self.warn(f"{self.name}: truncated while logsense was stopped; reading from its start")
            return
        self.offset, self.lineno = offset, lineno
        self.safe = (offset, lineno)
        self._restore_context(context or {})

    def _resume_rotated(self, saved: dict[str, Any]) -> bool:
        """A file saved as this path's (or as one rotated from it), found by its identity
        beside the path, read on from the saved offset as a rotated file."""
        try:
            ident = Identity.from_json(saved["identity"])
            offset, lineno = int(saved["offset"]), int(saved["line"])
        except (KeyError, TypeError, ValueError):
            return False
        name = self._find_rotated(ident)
        fd = self._open_fd(name, quiet=True) if name is not None else None
        if fd is None:
            return False
        old = Tailer(self.path, self.opts, self.warn)
        old.name = name
        old._attach(fd, ident)
        old._resume_at(offset, lineno, saved.get("context"))
        old._note_growth()
        self.rotated.append(old)
        return True

    def _rotate(self, fd: int) -> None:
        """The path names a new file (`fd`): the old one goes on being read beside it, under
        the name it has now, while its writer may still append to it."""
        assert self.ident is not None
        old = copy.copy(self)  # the descriptor, position and parser move to `old`
        old.rotated, old.lines_read, old.bytes_read = [], 0, 0
        old.name = self._find_rotated(self.ident) or self.path  # deleted, or moved out of sight
        if old.ctx is not None:
            old.ctx.file = old.name
        old._note_growth()
        self.rotated.append(old)
        self.fd = None
        self._attach(fd)

    def _note_growth(self) -> None:
        """A rotated file: when it last grew; and its name, should it have been rotated on."""
        assert self.fd is not None and self.ident is not None
        fst = os.fstat(self.fd)
        if fst.st_size == self.size_seen:
            return
        self.size_seen, self.grown_at = fst.st_size, time.monotonic()
        try:
            st = os.stat(self.name)
            moved = (st.st_dev, st.st_ino) != (fst.st_dev, fst.st_ino)
        except OSError:
            moved = True
        if moved and fst.st_nlink and (name := self._find_rotated(self.ident)) is not None:
            self.name = name
            if self.ctx is not None:
                self.ctx.file = name

    def _find_rotated(self, ident: Identity) -> str | None:
        parent = os.path.dirname(self.path) or "."
        try:
            names = os.listdir(parent)
        except OSError:
            return None
        base = os.path.basename(self.path)
        for name in sorted(names):
            if not name.startswith(base) or name == base:
                continue
            cand = os.path.join(parent, name)
            try:
                st = os.stat(cand)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) != (ident.dev, ident.ino):
                continue
            fd = self._open_fd(cand, quiet=True)
            if fd is None:
                continue
            try:
                if ident.head_matches(fd):
                    return cand
            finally:
                os.close(fd)
        return None

    def _open_fd(self, path: str, quiet: bool = False) -> int | None:
        """A descriptor for the regular file at `path`, never following a symlink (one swapped in
        for a rotated log could point at /etc/shadow) nor opening a FIFO or device."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if not quiet:
                why = "a symlink, not followed" if exc.errno == errno.ELOOP else f"cannot read: {exc.strerror or exc}"
                self._warn_once(path, why)
            return None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            if not quiet:
                self._warn_once(path, "not a regular file, not read")
            return None
        return fd

    def _warn_once(self, path: str, why: str) -> None:
        if self._warned.get(path) != why:  # a path polled every pass says it once, not every pass
            self._warned[path] = why
            self.warn(f"{path}: {why}")

    def _attach(self, fd: int, ident: Identity | None = None) -> None:
        if self.fd is not None and self.fd != fd:
            os.close(self.fd)
        self.fd = fd
        self.ident = ident or Identity.of(fd)
        self.offset, self.lineno, self.safe = 0, 1, (0, 1)
        self.skipping = False
        self.fmt, self.parser, self.ctx, self.ignored = None, None, None, False

    def _seek_end(self) -> None:
        """Start after the last complete line, counting lines so numbers stay true."""
        assert self.fd is not None
        pos, lines, last_nl = 0, 0, 0
        while True:
            block = os.pread(self.fd, READ_BYTES, pos)
            if not block:
                break
            lines += block.count(b"\n")
            nl = block.rfind(b"\n")
            if nl >= 0:
                last_nl = pos + nl + 1
            pos += len(block)
        self.offset, self.lineno = last_nl, lines + 1
        self.safe = (self.offset, self.lineno)
        self._detect()
        if self.parser is not None and self.offset:
            self._prime_context()

    def _prime_context(self) -> None:
        """Starting mid-file, a QEMU log's untimed lines need the last stamp above them."""
        assert self.fd is not None
        start = max(0, self.offset - 64 * 1024)
        block = os.pread(self.fd, self.offset - start, start)
        lines = block.split(b"\n")[1 if start else 0:]
        for raw in lines[-200:]:
            self.parser.parse(parsers._decode(raw, self.ctx), 0)
        if isinstance(self.parser, parsers.QemuLogParser):
            self.parser.pending = []
        self.ctx.stats.clear()

    # -- the parser's context -------------------------------------------------------------
    def _detect(self) -> bool:
        """Pick the format once the file has content; False while it cannot be told yet."""
        if self.fmt is not None:
            return True
        assert self.fd is not None
        head = os.pread(self.fd, 64 * 1024, 0)
        fmt = parsers.detect_format(self.path, head)
        if fmt is None or fmt.startswith("journal"):
            if head.count(b"\n") >= 5 or len(head) >= 4096:
                if not self.ignored:
                    self.warn(f"{self.path}: not a log format logsense knows, not followed")
                self.ignored = True
            return False
        self.fmt = fmt
        now = datetime.now(self.opts.tz)
        self.ctx = parsers.FileContext(file=self.name, host=self.opts.host, tz=self.opts.tz,
                                       year=self.opts.year or now.year, month=12 if self.opts.year else now.month)
        if fmt == "qemu":
            self.ctx.vm = Path(self.path).name.split(".log")[0] or None
        if fmt == "syslog" and parsers.is_journal_text(self.path, head):
            self.ctx.source = "journal"
        self.parser = parsers.LINE_PARSERS[fmt](self.ctx)
        return True

    def context(self) -> dict[str, Any]:
        p = self.parser
        if p is None:
            return {}
        if isinstance(p, parsers.LibvirtdParser):
            last = p.last
            return {"ts": last.ts.isoformat(), "pid": last.pid, "level": last.level} if last else {}
        last_ts = getattr(p, "last_ts", EPOCH)
        return {"ts": last_ts.isoformat()} if last_ts is not EPOCH else {}

    def _restore_context(self, ctx: dict[str, Any]) -> None:
        if not ctx or not self._detect():
            return
        try:
            ts = datetime.fromisoformat(ctx["ts"])
        except (KeyError, TypeError, ValueError):
            return
        p = self.parser
        if isinstance(p, parsers.LibvirtdParser):
            p.last = Record(ts=ts, source=p.source, message="", pid=ctx.get("pid"), level=ctx.get("level"))
        elif hasattr(p, "last_ts"):
            p.last_ts = ts

    # -- reading --------------------------------------------------------------------------
    def poll(self, select_for: Callable[[str], Any]) -> tuple[list[Record], bool]:
        """New complete lines as records, the rotated files' before the path's, after checking
        for rotation and truncation; and whether more is waiting (READ_BYTES was reached).
        A rotated file quiet for the grace period, with the new file in place, is finished."""
        if self.fd is None:
            self.open(at_end=False)
        self._check_path()
        recs: list[Record] = []
        more = False
        for old in self.rotated:
            old._note_growth()
            got, old_more = old._read(select_for, final=False)
            recs.extend(got)
            more = more or old_more
        if self.fd is not None:
            got, more_here = self._read(select_for, final=False)
            recs.extend(got)
            more = more or more_here
        if self.live:
            now = time.monotonic()
            for old in [o for o in self.rotated if now - o.grown_at >= self.opts.rotated_grace]:
                old._read_rest(recs, select_for)
                old.close()
                self.rotated.remove(old)
                self.lines_read += old.lines_read
                self.bytes_read += old.bytes_read
        for old in self.rotated:  # counted as this path's
            self.lines_read += old.lines_read
            self.bytes_read += old.bytes_read
            old.lines_read = old.bytes_read = 0
        return recs, more

    def _check_path(self) -> None:
        """Is the descriptor still the file at the path, from its start? Rotated away?"""
        self.live = False
        if self.fd is None:
            return
        assert self.ident is not None
        try:
            st = os.stat(self.path)
        except OSError:
            return  # renamed away or deleted, no new file yet: read on, its writer may still write
        fst = os.fstat(self.fd)
        if (st.st_dev, st.st_ino) != (fst.st_dev, fst.st_ino):
            # renamed away (logrotate create, virtlogd's vm.log -> vm.log.0) or deleted and
            # created anew
            fd = self._open_fd(self.path)
            if fd is None:
                return
            self._rotate(fd)
        elif fst.st_size < self.offset or not self.ident.head_matches(self.fd):
            self.warn(f"{self.path}: truncated or rewritten in place; reading it from its start")
            self._attach(self.fd)
        self.live = True

    def rotated_due(self) -> float | None:
        """When (monotonic) the longest-quiet rotated file is to be finished, if the path has
        its new file; a poll then finishes it, unless it grew meanwhile."""
        if not self.live or not self.rotated:
            return None
        return min(o.grown_at for o in self.rotated) + self.opts.rotated_grace

    def _read_rest(self, recs: list[Record], select_for) -> None:
        while True:
            more_recs, more = self._read(select_for, final=True)
            recs.extend(more_recs)
            if not more:
                return

    def _read(self, select_for, final: bool) -> tuple[list[Record], bool]:
        assert self.fd is not None
        if self.fmt is None and not self._detect():
            return [], False
        if self.ident is not None:
            self.ident.grow(self.fd)
        data = os.pread(self.fd, READ_BYTES, self.offset)
        if self.skipping:  # the rest of a monster line whose head was handed out already
            nl = data.find(b"\n")
            if nl < 0:
                self.offset += len(data)
                return [], len(data) == READ_BYTES
            self.offset += nl + 1
            self.safe = (self.offset, self.lineno)
            self.skipping = False
            data = data[nl + 1:]
        if not data:
            return [], False
        more = len(data) == READ_BYTES
        cut = data.rfind(b"\n") + 1
        if cut == 0 and more:  # a monster line: its head, cut as batch cuts it; skip to its end
            buf, cut = data[:parsers.MAX_LINE] + b"\n", len(data)
            self.skipping = True
        elif final and not more and cut < len(data):
            buf, cut = data + b"\n", len(data)  # a finished file's last line, never completed
        elif cut == 0:
            return [], False
        else:
            buf = data[:cut]
        recs = self._parse(buf, self.offset + cut, select_for)
        self.offset += cut
        return recs, more

    def _parse(self, buf: bytes, end: int, select_for) -> list[Record]:
        """The records of a buffer of complete lines (ending at file offset `end`), with the
        same fast path as batch."""
        ctx, parser = self.ctx, self.parser
        assert ctx is not None and parser is not None
        if not self.opts.year:
            now = datetime.now(self.opts.tz)
            ctx.year, ctx.month = now.year, now.month
        n = buf.count(b"\n")
        self.lines_read += n
        self.bytes_read += len(buf)
        first = self.lineno
        select = select_for(ctx.source or parser.source) if self.fmt in parsers.STATELESS else None
        if select is not None:
            out = list(parsers.parse_selected(parser, buf, first, select, ctx))
            self.lineno += n
            self.safe = (end, self.lineno)
            return out
        out = []
        qemu = isinstance(parser, parsers.QemuLogParser)
        start, lineno = 0, first
        safe_at = self.safe if qemu and parser.pending else None  # still inside a command line
        base = self.offset
        pos = buf.find(b"\n")
        while pos >= 0:
            was_pending = qemu and bool(parser.pending)
            rec = parser.parse(parsers._decode(buf[start:pos], ctx), lineno)
            if qemu and parser.pending and not was_pending:
                safe_at = (base + start, lineno)  # a command line begins: a restart resumes here
            elif qemu and not parser.pending:
                safe_at = None
            if rec is not None:
                out.append(rec)
            lineno += 1
            start = pos + 1
            pos = buf.find(b"\n", start)
        self.lineno = lineno
        self.safe = safe_at or (end, lineno)
        return out

    def saved(self) -> dict[str, Any] | None:
        """The position to resume at; with the rotated files still read, unless deleted (a
        restart could not find them)."""
        out: dict[str, Any] = {}
        if self.ident is not None:
            offset, line = self.safe
            out = {"identity": self.ident.to_json(), "offset": offset, "line": line, "context": self.context()}
        rotated = [o.saved() for o in self.rotated if o.fd is not None and os.fstat(o.fd).st_nlink]
        if rotated:
            out["rotated"] = rotated
        return out or None

    def close(self) -> None:
        for old in self.rotated:
            old.close()
        self.rotated = []
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# -- which paths ----------------------------------------------------------------------------
GLOB_CHARS = set("*?[")


@dataclass
class PathSpec:
    """A path given by the user: a file, a directory (every log file under it) or a glob."""

    text: str

    @property
    def is_glob(self) -> bool:
        return any(c in GLOB_CHARS for c in self.text)

    @property
    def root(self) -> str:
        """The directory to watch: the glob's fixed prefix, the directory, or the file's parent."""
        if self.is_glob:
            parts = []
            for part in Path(self.text).parts:
                if any(c in GLOB_CHARS for c in part):
                    break
                parts.append(part)
            return str(Path(*parts)) if parts else "."
        if os.path.isdir(self.text):
            return self.text
        return os.path.dirname(self.text) or "."

    @property
    def recursive(self) -> bool:
        if self.is_glob:
            return "/" in self.text[len(self.root):].strip("/") or "**" in self.text
        return os.path.isdir(self.text)

    def wants(self, path: str) -> bool:
        """Is this file one to follow under this spec?"""
        if self.is_glob:
            return fnmatch.fnmatch(path, self.text) and is_log_name(os.path.basename(path))
        if path == self.text:
            return True
        prefix = self.text.rstrip("/") + "/"
        return path.startswith(prefix) and is_log_name(os.path.basename(path))

    def files(self) -> Iterator[str]:
        """Files under the spec that exist now."""
        root = self.root
        if not self.is_glob and not os.path.isdir(self.text):
            if os.path.isfile(self.text):
                yield self.text
            return
        if not os.path.isdir(root):
            return
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                p = os.path.join(dirpath, name)
                if self.wants(p) and os.path.isfile(p) and not os.path.islink(p):
                    yield p
            if not self.recursive:
                break


class Watcher:
    """inotify (watchdog) on the directories of the specs; changed paths are collected in a set
    and `wake` is set. A directory that does not exist yet is waited for on its nearest
    existing ancestor."""

    def __init__(self, wake: Waker) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        self.wake = wake
        self.lock = threading.Lock()
        self.changed: set[str] = set()
        self.dirs_changed = False
        self.observer = Observer()
        self.scheduled: dict[tuple[str, bool], Any] = {}
        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event) -> None:
                if event.event_type in ("opened", "closed_no_write"):
                    return
                with watcher.lock:
                    watcher.changed.add(os.fsdecode(event.src_path))
                    dest = getattr(event, "dest_path", "")
                    if dest:
                        watcher.changed.add(os.fsdecode(dest))
                    if event.is_directory and event.event_type in ("created", "moved", "deleted"):
                        watcher.dirs_changed = True
                watcher.wake.set()

        self.handler = Handler()

    def start(self) -> None:
        self.observer.start()

    def watch(self, specs: list[PathSpec]) -> None:
        """(Re)schedule watches so that every spec's root, or its nearest ancestor, is watched."""
        wanted: set[tuple[str, bool]] = set()
        for spec in specs:
            root = spec.root
            if os.path.isdir(root):
                wanted.add((root, spec.recursive))
                continue
            anc = os.path.dirname(os.path.abspath(root))
            while anc and not os.path.isdir(anc):
                anc = os.path.dirname(anc)
            wanted.add((anc or "/", bool(anc and anc != "/")))
        for key in list(self.scheduled):
            if key not in wanted:
                with contextlib.suppress(KeyError, ValueError):
                    self.observer.unschedule(self.scheduled.pop(key))
        for key in wanted - set(self.scheduled):
            with contextlib.suppress(OSError):  # gone again: the next directory event reschedules
                self.scheduled[key] = self.observer.schedule(self.handler, key[0], recursive=key[1])

    def take(self) -> tuple[set[str], bool]:
        with self.lock:
            changed, self.changed = self.changed, set()
            dirs, self.dirs_changed = self.dirs_changed, False
        return changed, dirs

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join(timeout=5)


# -- the journal ----------------------------------------------------------------------------
JOURNAL_UNITS = ("libvirtd", "virtqemud", "virtlogd", "virtnetworkd", "virtstoraged", "virtproxyd")
JOURNAL_IDENTIFIERS = (*JOURNAL_UNITS, "kernel", "audit", "dnsmasq", "dnsmasq-dhcp", "qemu-system-x86_64")


class JournalFollower(threading.Thread):
    """Reads the journal (the system's, or a directory's) in its own thread: systemd.journal's
    Reader is not shared between threads. Records go to `out` with their cursor; the daemon
    saves the cursor of the last record it has emitted.

    Where reading starts: after the saved cursor; else at the head with `from_start`; else at
    `since` (the last save of a state that has no cursor: the journal was not followed, or
    was empty, so what was written while the daemon was stopped is still to be read); else at
    the end (a first start)."""

    def __init__(self, out: queue.Queue, wake: Waker, host: str | None, warn: Warn,
                 directory: str | None = None, cursor: str | None = None, from_start: bool = False,
                 since: datetime | None = None) -> None:
        super().__init__(name="logsense-journal", daemon=True)
        self.out, self.wake, self.host, self.warn = out, wake, host, warn
        self.directory, self.cursor, self.from_start, self.since = directory, cursor, from_start, since
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.failed = False

    def _open(self):
        from systemd import journal as sdj

        reader = sdj.Reader(path=self.directory) if self.directory else sdj.Reader()
        for unit in JOURNAL_UNITS:
            reader.add_match(_SYSTEMD_UNIT=f"{unit}.service")
            reader.add_disjunction()
        for ident in JOURNAL_IDENTIFIERS:
            reader.add_match(SYSLOG_IDENTIFIER=ident)
            reader.add_disjunction()
        reader.add_match(_TRANSPORT="kernel")
        reader.add_disjunction()
        reader.add_match(_TRANSPORT="audit")
        return reader

    def _position(self, reader) -> None:
        if self.cursor:
            try:
                reader.seek_cursor(self.cursor)
                entry = reader.get_next()
                if entry and entry.get("__CURSOR") != self.cursor:
                    reader.get_previous()  # the saved entry is gone: do not skip its successor
                return
            except OSError as exc:
                where = "its start" if self.from_start else "the last save" if self.since else "its end"
                self.warn(f"journal: saved cursor unusable ({exc}); reading from {where}")
        if self.from_start:
            reader.seek_head()
        elif self.since is not None:
            reader.seek_realtime(self.since.timestamp())
        else:
            reader.seek_tail()
            reader.get_previous()

    def run(self) -> None:
        try:
            reader = self._open()
            self._position(reader)
        except Exception as exc:  # noqa: BLE001 - no journal is a warning, never a crash
            self.failed = True
            self.warn(f"journal: cannot open ({exc}); not following it")
            self.ready.set()
            return
        self.ready.set()
        failures = 0
        while not self.stopping.is_set():
            try:
                self._follow(reader)
                return
            except Exception as exc:  # noqa: BLE001 - a reader that dies is restarted and said, never silent
                failures += 1
                self.warn(f"journal: reader failed ({type(exc).__name__}: {exc}); restarting it")
                with contextlib.suppress(Exception):
                    reader.close()
                self.stopping.wait(min(30.0, 0.5 * 2 ** min(failures, 6)))
                try:
                    reader = self._open()
                    self.from_start = self.from_start and self.cursor is None
                    self._position(reader)
                except Exception as exc2:  # noqa: BLE001
                    self.warn(f"journal: cannot reopen ({exc2}); trying again")

    def _follow(self, reader) -> None:
        name = self.directory
        with reader:
            while not self.stopping.is_set():
                n = 0
                while not self.stopping.is_set():
                    entry = reader.get_next()
                    if not entry:
                        break
                    if (rec := journal.record_or_skip(entry, name, self.host, self.warn)) is not None:
                        self.out.put(rec)
                    self.cursor = entry.get("__CURSOR") or self.cursor  # where a restart goes on
                    n += 1
                    if n % 500 == 0:
                        self.wake.set()
                if n:
                    self.wake.set()
                reader.wait(0.5)

    def stop(self) -> None:
        self.stopping.set()


def now_utc() -> datetime:
    return datetime.now(UTC)
