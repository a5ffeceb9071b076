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
import resource
import select
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from logsense import journal
from logsense.ingest import formats
from logsense.ingest.linereader import PRIME_BYTES, LineReader
from logsense.model import Record
from logsense.parsers import MAX_LINE
from logsense.sources import COMPRESSED, DATE_SUFFIX, NUM_SUFFIX, LogFile

FP_BYTES = 1024  # the head fingerprint covers the first min(size, FP_BYTES) bytes
READ_BYTES = 2 * MAX_LINE  # per file per pass, so one busy file cannot starve the others
QUIET = 0.3  # seconds after which a multi-line record still held is handed out as it is
SEEN_KEPT = 64  # identities of files read that are gone, kept to know their compressed copies
MAX_DECOMPRESSED = 256 << 20  # bytes of an unseen compressed generation read from memory
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


def compressed_head(path: str) -> bytes | None:
    """The first FP_BYTES of a compressed file's content; None if it cannot be read."""
    try:
        with _compressed_stream(path) as f:
            return f.read(FP_BYTES)
    except (OSError, EOFError, ValueError):
        return None


def _same_file(path: str, st: os.stat_result) -> bool:
    try:
        now = os.lstat(path)
    except OSError:
        return False
    return (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)


def _compressed_stream(path: str):
    kind = next(k for ext, k in COMPRESSED.items() if path.endswith(ext))
    return LogFile(Path(path), path, 0.0, kind).open(lambda _: None)


def decompressed(path: str) -> tuple[int | None, int]:
    """A compressed file's content in an anonymous memory file to read as a log is read, if it
    is at most MAX_DECOMPRESSED bytes; else None and the number of lines it holds."""
    fd: int | None = os.memfd_create("logsense-generation", os.MFD_CLOEXEC)
    size = lines = 0
    try:
        with _compressed_stream(path) as f:
            while block := f.read(1 << 20):
                lines += block.count(b"\n")
                size += len(block)
                if fd is not None and size > MAX_DECOMPRESSED:
                    os.close(fd)
                    fd = None
                view = memoryview(block) if fd is not None else memoryview(b"")
                while view:
                    view = view[os.write(fd, view):]  # type: ignore[arg-type]
    except (OSError, EOFError, ValueError):
        pass  # damaged: what came before the damage is read
    return fd, lines


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


_descriptors_said = False


def _say_out_of_descriptors(warn: Warn) -> None:
    """Once per process: every file failing to open would otherwise say it every pass."""
    global _descriptors_said
    if not _descriptors_said:
        _descriptors_said = True
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        warn(f"out of file descriptors (limit {soft}, hard {hard}): some logs are not followed until "
             "descriptors free up; raise LimitNOFILE in the unit")


def raise_descriptor_limit() -> int:
    """The soft limit of open files raised to the hard one (10,000 VM logs need more than 1,024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            return hard
    return soft


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
        self.reader = LineReader()  # position (offset, line, safe resume point) and parser
        self.fmt: str | None = None
        self.ignored = False  # content that is not a log format logsense knows
        self.lines_read = 0
        self.inherited: dict[str, Any] = {}  # the parser state of the file this one replaced
        self.inherited_fmt: str | None = None  # and its format
        self.data_at = 0.0  # when (monotonic) the last bytes were read
        self.bytes_read = 0  # of complete lines, as lines_read (for the metrics)
        self.rotated: list[Tailer] = []
        self.suspended: dict[str, Any] | None = None  # the position of a closed quiet file (suspend)
        self.out_of_fds = False  # the last open failed for want of a descriptor
        self.live = False  # at the last poll the descriptor was the file at the path
        self.size_seen = -1  # a rotated file's size when last seen grown, and when (monotonic)
        self.grown_at = 0.0
        # identities of the files of this path's rotation set already read: a generation neither
        # among them nor history was rotated away unseen and is read when a rotation is noticed
        self.seen: dict[tuple[int, int], list[Identity]] = {}  # every content a file had (truncations)
        self.history_ns: int | None = None  # generations last written by then are history, not read
        self.catching_up = False  # the last look for unseen generations met a rotation under way

    @property
    def offset(self) -> int:
        """Bytes of the file consumed so far (complete lines)."""
        return self.reader.offset

    # -- opening and resuming -------------------------------------------------------------
    def open(self, at_end: bool) -> bool:
        """Open the file at its start or its end; False if it is not there (or unreadable)."""
        fd = self._open_fd(self.path)
        if fd is None:
            return False
        if self.history_ns is None:
            self.history_ns = time.time_ns()
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
            self._catch_up_since_saved()
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
        if fd is None and self.out_of_fds:  # not "replaced": no descriptor to look with; later
            self.suspended = saved
            return
        if fd is not None and ident.matches(fd):
            if self.history_ns is None:
                self.history_ns = time.time_ns()
            self._attach(fd, ident)
            self._resume_at(offset, lineno, saved.get("context"))
            return
        if not self._resume_rotated(saved):
            self.warn(f"{self.path}: replaced while logsense was stopped and the old file is gone; "
                      "reading the new one from its start")
        self._catch_up_since_saved()
        if fd is not None:
            self._attach(fd)

    def resume_rotated(self, saved: dict[str, Any]) -> bool:
        """For a path that names no file now: only the files rotated away from it, if any is
        found beside it (the new file is read from its start when it appears)."""
        found = [self._resume_rotated(entry) for entry in (*(saved.get("rotated") or []), saved)]
        if any(found):
            self._catch_up_since_saved()
        return any(found)

    def _resume_at(self, offset: int, lineno: int, context: dict[str, Any] | None) -> None:
        assert self.fd is not None
        if os.fstat(self.fd).st_size < offset:
            self.warn(f"{self.name}: truncated while logsense was stopped; reading from its start")
            return
        self.reader = LineReader(offset=offset, lineno=lineno)
        if context and self._detect():
            self.reader.parser.restore(context)  # type: ignore[union-attr]

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
        old._rename(old.name)
        old._note_growth()
        self.rotated.append(old)
        self.fd = None
        self._attach(fd)
        self._catch_up()
        # the new file continues the old one: its first lines may be continuation lines
        # without a stamp, which take the last one before (and cannot tell the format)
        self.inherited, self.inherited_fmt = old.context(), old.fmt

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
            self._rename(name)

    def _rename(self, name: str) -> None:
        """Records of a rotated file carry the name it has now."""
        self.name = name
        if self.reader.parser is not None:
            self.reader.parser.ctx.file = name

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
        self.out_of_fds = False
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.out_of_fds = exc.errno in (errno.EMFILE, errno.ENFILE)
            if self.out_of_fds:
                _say_out_of_descriptors(self.warn)
            elif not quiet:
                why = "a symlink, not followed" if exc.errno == errno.ELOOP else f"cannot read: {exc.strerror or exc}"
                self._warn_once(path, why)
            return None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            if not quiet:
                self._warn_once(path, "not a regular file, not read")
            return None
        return fd

    # -- the rotation set: generations rotated away unseen --------------------------------
    def _generations(self, raced: list[bool] | None = None) -> list[tuple[str, os.stat_result]]:
        """The regular files beside the path whose names extend it (its rotated names, in any
        scheme), oldest first: by modification time, then the higher number. `raced` is told
        when a name went away while listed (a rotation under way)."""
        parent = os.path.dirname(self.path) or "."
        base = os.path.basename(self.path)
        try:
            names = os.listdir(parent)
        except OSError:
            return []
        out = []
        for name in names:
            if not name.startswith(base) or name == base:
                continue
            try:
                st = os.lstat(cand := os.path.join(parent, name))
            except OSError:
                if raced is not None:
                    raced.append(True)
                continue
            if stat.S_ISREG(st.st_mode):
                out.append((cand, st))

        def age(item: tuple[str, os.stat_result]) -> tuple[int, int]:
            m = NUM_SUFFIX.match(os.path.basename(item[0]))
            return item[1].st_mtime_ns, -int(m.group(2)) if m else 0
        return sorted(out, key=age)

    def _catch_up_since_saved(self) -> None:
        """After a restart that found the saved file rotated: the generations written after it
        (later modification times) were rotated while logsense was stopped; read them. Without
        the saved file no generation can be told newer: none is read (a warning said so)."""
        if self.history_ns is None:
            newest = self.rotated[-1] if self.rotated else None
            self.history_ns = os.fstat(newest.fd).st_mtime_ns if newest and newest.fd is not None \
                else time.time_ns()
        self._catch_up()

    def _remember(self, ident: Identity) -> None:
        known = self.seen.setdefault((ident.dev, ident.ino), [])
        if not any(k is ident for k in known):
            known.append(ident)

    def _known(self) -> Iterator[Identity]:
        return (k for known in self.seen.values() for k in known)

    def _is_seen(self, ident: Identity, fd: int) -> bool:
        """Read before (same inode and head) or a copy of a file read (same head: copytruncate's).
        A head of no bytes proves nothing read: it stands only for a file still empty, not for
        the next file given the inode once the empty one was let go and deleted."""
        same_inode = self.seen.get((ident.dev, ident.ino), [])
        if any(k.head_matches(fd) and (k.fp_len or not ident.fp_len) for k in same_inode):
            return True
        return any(k.fp_len and k.fp_len <= ident.fp_len and k.head_matches(fd) for k in self._known())

    def _catch_up(self) -> None:
        """A rotation was noticed: every generation of the rotation set not seen yet (rotated
        away before it was opened) is read from its start, oldest first, after the rotated files
        already read; a compressed one is said once. Identities no longer there are forgotten."""
        found = self._settled_generations()
        self.catching_up = found is None  # a rotation under way: again at the next poll, the
        if found is None:  # newer files waiting, so that the generations are read oldest first
            return
        # heads as they are now, after the listing: a copy listed (a .gz) was made from bytes its
        # file had before, so it is told by all of them (a file opened empty, written, rotated
        # and compressed while the listing was taken has no byte in a head taken before it)
        for t in (self, *self.rotated):
            if t.fd is not None and t.ident is not None:
                t.ident.grow(t.fd)
        present = {(st.st_dev, st.st_ino) for _, st, _ in found}
        for name, st, fd in found:
            if fd is None:
                self._compressed_generation(name, st)
                continue
            ident = Identity.of(fd)
            if self._is_seen(ident, fd):
                os.close(fd)
                self._remember(ident)
                continue
            self._add_generation(name, fd, ident)
        # a file gone from the listing may come back compressed (logrotate's compress): its
        # identity is kept to tell the .gz for what it is; only the oldest beyond SEEN_KEPT go
        open_here = self.identities()
        gone = [k for k in self.seen if k not in present and k not in open_here]
        for key in gone[:max(0, len(self.seen) - SEEN_KEPT)]:
            del self.seen[key]

    def _settled_generations(self, tries: int = 5) -> list[tuple[str, os.stat_result, int | None]] | None:
        """The generations not open here, oldest first, each opened (a compressed one: None),
        from a listing no rotation changed while it was taken; None if every one of `tries` was."""
        for _ in range(tries):
            raced: list[bool] = []
            found: list[tuple[str, os.stat_result, int | None]] = []
            open_here = self.identities()
            for name, st in self._generations(raced):
                if (st.st_dev, st.st_ino) in open_here or self.history_ns is not None and \
                        st.st_mtime_ns <= self.history_ns:
                    continue
                if name.endswith(tuple(COMPRESSED)):
                    found.append((name, st, None))
                    continue
                fd = self._open_fd(name, quiet=True)
                if fd is not None and (os.fstat(fd).st_ino, os.fstat(fd).st_dev) == (st.st_ino, st.st_dev):
                    found.append((name, st, fd))
                    continue
                if fd is not None:
                    os.close(fd)
                    raced.append(True)
                elif _same_file(name, st):  # there but not to be read (permissions): not a race
                    continue
                else:
                    raced.append(True)
            if not raced:
                return found
            for _, _, fd in found:
                if fd is not None:
                    os.close(fd)
        return None

    def _add_generation(self, name: str, fd: int, ident: Identity | None = None) -> None:
        """An unseen generation, read from its start after the rotated files before it."""
        gen = Tailer(self.path, self.opts, self.warn)
        gen.seen = self.seen
        gen.name = name
        gen._attach(fd, ident)
        gen.inherited_fmt = self.fmt or (self.rotated[-1].fmt if self.rotated else None)
        gen._note_growth()
        self.rotated.append(gen)

    def _compressed_generation(self, name: str, st: os.stat_result) -> None:
        """A compressed generation: already read if its content starts as a file read did;
        otherwise it is decompressed into memory and read as any unseen generation, or, too
        big for that, said once with the lines it holds. Told by content, never by inode alone:
        a .gz listed while its compressor had not written it yet (a rotation racing the
        listing) is the same inode as the whole one later, and an inode is reused."""
        head = compressed_head(name)
        if not head:  # nothing readable yet: known at a later catch-up by what it holds then
            return
        fp = Identity(st.st_dev, st.st_ino, _fingerprint(head[:FP_BYTES]), min(len(head), FP_BYTES))
        read_before = any(k.fp_len and len(head) >= k.fp_len and _fingerprint(head[:k.fp_len]) == k.fp
                          for k in self._known())
        self._remember(fp)
        if read_before:
            return
        fd, lines = decompressed(name)
        if fd is not None:
            self._add_generation(name, fd)
        else:
            self.warn(f"{name}: a compressed generation of {self.path} rotated away before it was read, "
                      f"too big to read here: {lines} line(s) may be missing (analyze reads it)")

    def identities(self) -> set[tuple[int, int]]:
        """(device, inode) of every file this tailer has open: the current one and the rotated
        ones still read, so a new name for one of them is known for what it is."""
        out = set()
        for t in (self, *self.rotated):
            if t.fd is not None:
                st = os.fstat(t.fd)
                out.add((st.st_dev, st.st_ino))
        return out

    def _warn_once(self, path: str, why: str) -> None:
        if self._warned.get(path) != why:  # a path polled every pass says it once, not every pass
            self._warned[path] = why
            self.warn(f"{path}: {why}")

    def _attach(self, fd: int, ident: Identity | None = None) -> None:
        if self.fd is not None and self.fd != fd:
            os.close(self.fd)
        self.fd = fd
        self.ident = ident or Identity.of(fd)
        self._remember(self.ident)
        self.reader = LineReader()
        self.fmt, self.ignored = None, False

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
        self.reader = LineReader(offset=last_nl, lineno=lines + 1)
        if self._detect() and last_nl:
            start = max(0, last_nl - PRIME_BYTES)
            self.reader.prime(os.pread(self.fd, last_nl - start, start))

    def open_back(self, nbytes: int) -> bool:
        """Open the file `nbytes` before its end, at the start of a line: a restart whose saved
        position is lost reads the recent past again (what was written while it was stopped is
        in it) instead of skipping to the end."""
        fd = self._open_fd(self.path)
        if fd is None:
            return False
        self._attach(fd)
        size = os.fstat(fd).st_size
        start = max(0, size - nbytes)
        if start:  # the first line that begins at or after `start`
            pos = start - 1
            while (block := os.pread(fd, READ_BYTES, pos)) and (nl := block.find(b"\n")) < 0:
                pos += len(block)
            start = pos + nl + 1 if block else size
        lines, pos = 0, 0
        while pos < start and (block := os.pread(fd, min(READ_BYTES, start - pos), pos)):
            lines += block.count(b"\n")
            pos += len(block)
        self.reader = LineReader(offset=start, lineno=lines + 1)
        if self._detect() and start:
            before = max(0, start - PRIME_BYTES)
            self.reader.prime(os.pread(fd, start - before, before))
        return True

    def _detect(self) -> bool:
        """Pick the format once the file has content; False while it cannot be told yet."""
        if self.fmt is not None:
            return True
        assert self.fd is not None
        head = os.pread(self.fd, formats.HEAD_BYTES, 0)
        fmt = formats.detect(self.path, head)
        if fmt is None and head and self.inherited_fmt is not None:
            fmt = self.inherited_fmt
        if fmt not in formats.LINE_FORMATS:
            if head.count(b"\n") >= 5 or len(head) >= 4096:
                if not self.ignored:
                    self.warn(f"{self.path}: not a log format logsense knows, not followed")
                self.ignored = True
            return False
        self.fmt = fmt
        year, month = self._year()
        ctx = formats.file_context(self.path, fmt, head, self.opts.host, self.opts.tz, year, month)
        ctx.file = self.name
        self.reader.parser = formats.new_parser(fmt, ctx)
        self.reader.fast = formats.fast_path_ok(fmt)
        if self.inherited:
            self.reader.parser.restore(self.inherited)
            self.inherited = {}
        return True

    def _year(self) -> tuple[int, int]:
        """Year and month of the newest line: --year, else now (a live file's newest line is now's)."""
        if self.opts.year:
            return self.opts.year, 12
        now = datetime.now(self.opts.tz)
        return now.year, now.month

    def context(self) -> dict[str, Any]:
        return self.reader.parser.state() if self.reader.parser is not None else {}

    # -- reading --------------------------------------------------------------------------
    def suspend(self) -> bool:
        """Close a quiet file's descriptor and keep its position: thousands of VM logs need not
        hold thousands of descriptors. The next poll reopens it as a restart would (identity
        decides whether it is the same file). False when it cannot (rotated files being read)."""
        if self.rotated or self.fd is None:
            return False
        self.suspended = self.saved()
        self.close()
        return True

    def poll(self, select_for: Callable[[str], Any]) -> tuple[list[Record], bool]:
        """New complete lines as records, the rotated files' before the path's, after checking
        for rotation and truncation; and whether more is waiting (READ_BYTES was reached).
        A rotated file quiet for the grace period, with the new file in place, is finished."""
        if self.fd is None and self.suspended is not None:
            saved, self.suspended = self.suspended, None
            self.resume(saved)
            if self.suspended is not None:  # no descriptor free: still suspended, try again later
                return [], True
        elif self.fd is None:
            self.open(at_end=False)
        self._check_path()
        if self.catching_up:
            self._catch_up()
        recs: list[Record] = []
        more = False
        if self.fd is not None and self.fmt is None:
            self._detect()
        for old in self.rotated:
            if old.fmt is None and old.inherited_fmt is None:
                old.inherited_fmt = self.fmt  # too short to tell: it was what its successor is
            old._note_growth()
            got, old_more = old._read(select_for, final=False)
            recs.extend(got)
            more = more or old_more
            if old_more:  # oldest first: the newer generations wait for this one's rest
                break
        more = more or self.catching_up
        if self.fd is not None and not more:
            got, more_here = self._read(select_for, final=False)
            recs.extend(got)
            more = more or more_here
        if self.live:
            now = time.monotonic()
            for old in [o for o in self.rotated if now - o.grown_at >= self.opts.rotated_grace
                        and (o.fmt or o.inherited_fmt)]:  # an untold format may yet be told by the new file
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
        elif fst.st_size < self.reader.offset or not self.ident.head_matches(self.fd):
            self.warn(f"{self.path}: truncated or rewritten in place; reading it from its start")
            self._attach(self.fd)
        self.live = True

    def rotated_due(self) -> float | None:
        """When (monotonic) a poll is due without a change: the longest-quiet rotated file is
        to be finished (if the path has its new file; unless it grew meanwhile), or a
        multi-line record held back has been quiet for QUIET seconds."""
        due = [t.data_at + QUIET for t in (self, *self.rotated) if t.fd is not None and t.reader.parser is not None
               and t.reader.parser.holding]
        if self.live and self.rotated:
            due.append(min(o.grown_at for o in self.rotated) + self.opts.rotated_grace)
        return min(due) if due else None

    def _read_rest(self, recs: list[Record], select_for) -> None:
        while True:
            more_recs, more = self._read(select_for, final=True)
            recs.extend(more_recs)
            if not more:
                return

    def _read(self, select_for, final: bool) -> tuple[list[Record], bool]:
        """New records from the reader's offset on; and whether more is waiting."""
        assert self.fd is not None
        if self.fmt is None and not self._detect():
            return [], False
        if self.ident is not None:
            self.ident.grow(self.fd)
        reader = self.reader
        assert reader.parser is not None
        if not self.opts.year:
            reader.parser.ctx.year, reader.parser.ctx.month = self._year()
        data = os.pread(self.fd, READ_BYTES, reader.offset)
        more = len(data) == READ_BYTES
        now = time.monotonic()
        if data:
            self.data_at = now
        before, offset_before = reader.lines_read, reader.offset
        recs = reader.feed(data, at_end=final and not more,
                           select=select_for(reader.parser.ctx.source or reader.parser.source))
        if reader.parser.holding and (final and not more or now - self.data_at >= QUIET):
            recs.extend(reader.flush())  # a record's last line is not coming: hand it out as it is
        self.lines_read += reader.lines_read - before
        self.bytes_read += reader.offset - offset_before
        return recs, more

    def saved(self) -> dict[str, Any] | None:
        """The position to resume at; with the rotated files still read, unless deleted (a
        restart could not find them)."""
        if self.suspended is not None:
            return self.suspended
        out: dict[str, Any] = {}
        if self.ident is not None:
            offset, line = self.reader.safe
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

    def domain_xml(self) -> Iterator[str]:
        """Domain XML files under the spec (a watched tree with its /etc/libvirt/qemu)."""
        if not os.path.isdir(self.root):
            return
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            for name in sorted(filenames):
                if formats.is_domain_xml(p := os.path.join(dirpath, name)):
                    yield p
            if not self.recursive:
                break

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
        self.boots = journal.BootMarks()  # a new boot id is a boot of the host

    def _open(self):
        return journal.open_reader(directory=self.directory)

    def _position(self, reader) -> None:
        if self.cursor:
            try:
                self.boots.seed(journal.seek_after(reader, self.cursor), self.host)  # the boot read last
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
        with reader:
            while not self.stopping.is_set():
                if self.drain(reader):
                    self.wake.set()
                reader.wait(0.5)

    def drain(self, reader) -> int:
        """Every entry the reader has now, as records into `out`; how many."""
        n = 0
        while not self.stopping.is_set():
            entry = reader.get_next()
            if not entry:
                break
            if (rec := journal.record_or_skip(entry, self.directory, self.host, self.warn)) is not None:
                if (mark := self.boots.before(rec)) is not None:
                    self.out.put(mark)
                self.out.put(rec)
            self.cursor = entry.get("__CURSOR") or self.cursor  # where a restart goes on
            n += 1
            if n % 500 == 0:
                self.wake.set()
        return n

    def stop(self) -> None:
        self.stopping.set()


