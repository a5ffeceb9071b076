"""`analyze`, `events` and the DataFrame API: a directory walk (sources) into the shared
ingestion core (`logsense.ingest`): format and context, line reader, classify. The daemon
(`follow`, `daemon`) feeds the same core from inotify and the journal."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from logsense import journal, parallel
from logsense.attribution import EntityMap
from logsense.catalogue import REGEX_TIMEOUT, Catalogue, load_catalogue
from logsense.ingest import formats
from logsense.ingest.classify import Classifier, classify
from logsense.ingest.linereader import LineReader, read_stream
from logsense.ingest.log import warn as log_warn
from logsense.model import SOURCES, Event, Record
from logsense.parsers import MAX_LINE
from logsense.sources import LIVE_PATHS, STDIN, TAR_RE, Collection, LogFile, Workspace, discover, live_paths
from logsense.spill import SortedRuns
from logsense.text import one_line
from logsense.timespec import TimeSpecError, local_zone, parse_when

__all__ = ["InputError", "Options", "Reader", "Run", "classify", "parse_time", "parse_zone", "stderr_warn"]


class InputError(Exception):
    """A usage or input problem to report in one line (exit status 2)."""


@dataclass
class Options:
    since: datetime | None = None
    until: datetime | None = None
    tz: tzinfo | None = None
    year: int | None = None
    host: str | None = None
    all_lines: bool = False
    catalogue_dirs: list[str] = field(default_factory=list)
    disable: list[str] = field(default_factory=list)  # pattern ids switched off
    display_tz: tzinfo | None = None  # the zone reports print times in (None: the machine's)
    jobs: int = 1  # processes that parse and classify files: this one and jobs-1 workers (logsense/parallel.py)


@dataclass
class Run:
    """What one pass over the inputs produced besides the events. `read` names every file (or
    journal) read; `missing` says, one line each, what could not be read or was read in part."""

    stats: dict[str, Any] = field(default_factory=lambda: {
        "lines_read": 0, "events_matched": 0, "files_read": 0, "unparsed_lines": 0, "seconds": 0.0,
        "unrecognised_errors": 0, "long_lines": 0, "files_skipped": 0, "duplicates": 0})
    warnings: list[str] = field(default_factory=list)
    entities: EntityMap = field(default_factory=EntityMap)
    read: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def nothing_read(self) -> bool:
        return not self.read


def parse_zone(name: str | None) -> tzinfo:
    """A zone by name; none: the machine's (TZ, /etc/localtime)."""
    if not name:
        return local_zone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputError(f"unknown time zone: {name}") from exc


def parse_time(value: str | datetime | None, zone: tzinfo) -> datetime | None:
    """--since/--until: what journalctl takes (logsense/timespec.py) or a datetime; without a zone,
    `zone`'s wall-clock time."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=zone)
    try:
        return parse_when(str(value), zone)
    except TimeSpecError as exc:
        raise InputError(str(exc)) from exc



class Reader:
    """Reads every record under some paths, classifying as it goes."""

    def __init__(self, opts: Options, cat: Catalogue | None = None,
                 warn: Callable[[str], None] | None = None,
                 on_file: Callable[[str], None] | None = None, workers: parallel.Workers | None = None) -> None:
        self.opts = opts
        self.cat = cat or load_catalogue(opts.catalogue_dirs, opts.disable)
        self.run = Run()
        self.core = Classifier(self.cat, self.run.entities, opts.all_lines, opts.since, opts.until)
        self._warn = warn
        self._on_file = on_file  # told each file's name as reading starts (a progress bar)
        # worker processes: the caller's (kept open), else started by the first host big enough (closed after)
        self._workers, self._own_workers = workers, workers is None
        self.used_workers = False  # some host's files were read by workers

    def warn(self, msg: str, unread: bool = True) -> None:
        """A warning; `unread`: about input that was not read, or read only in part."""
        if unread:
            self.run.missing.append(msg)
        self.run.warnings.append(msg)
        if self._warn is not None:
            self._warn(msg)

    def events(self, paths: list[str]) -> list[Event]:
        """All events, VMs resolved, in time order (stable: ties keep reading order)."""
        return list(self.iter_events(paths))

    def iter_events(self, paths: list[str]) -> Iterator[Event]:
        """The events of `events()`, in the same order, never all in memory: everything is read
        (and `run` complete) before this returns; the events then come from sorted runs on disk
        (logsense/spill.py), each VM resolved as it leaves."""
        t0 = time.perf_counter()
        runs = SortedRuns()
        matched = unrecognised = 0
        try:
            for ev in self._events(paths):
                matched += ev.pattern is not None
                unrecognised += ev.shape is not None
                runs.add(ev)
        except BaseException:
            runs.close()  # the runs spilled so far
            raise
        self.run.stats["events_matched"] = matched
        self.run.stats["unrecognised_errors"] = unrecognised
        self.run.stats["duplicates"] = self.core.duplicates.dropped
        self.run.stats["seconds"] = round(time.perf_counter() - t0, 3)
        self.run.stats["sources_read"] = list(self.run.read)
        self.run.stats["sources_missing"] = list(self.run.missing)
        if timeouts := self.cat.timeouts:
            self.run.stats["regex_timeouts"] = sum(timeouts.values())
            worst, n = timeouts.most_common(1)[0]
            self.warn(f"{sum(timeouts.values())} line(s) were left unmatched because a pattern took longer than "
                      f"{REGEX_TIMEOUT * 1000:.0f} ms on them (most: {worst}, {n})")
        return (self.core.resolve(ev) for ev in runs.merged())

    def _events(self, paths: list[str]) -> Iterator[Event]:
        live = not paths
        missing = [p for p in paths if p != STDIN and not Path(p).exists()]
        if paths and len(missing) == len(paths):
            raise InputError(f"{missing[0]}: no such file or directory" if len(missing) == 1
                             else f"none of the {len(missing)} paths exists (first: {missing[0]})")
        ws = Workspace()
        if live:
            self._missing_live_paths()
        try:
            cols = discover(paths or live_paths(), ws, self.warn)
            for col in cols:
                yield from self._collection(col)
            self._note_empty(paths or live_paths())
            if live:
                yield from self._live_journal()
        except BaseException:  # Ctrl-C, an error, or the caller stopped early: workers stop mid-job
            if self._workers is not None and self._own_workers:
                self._workers.abort()
            raise
        finally:
            if self._workers is not None and self._own_workers:
                self._workers.close()
                self._workers = None
            ws.close()

    def _missing_live_paths(self) -> None:
        found = set(live_paths())
        if LIVE_PATHS[0] not in found:
            self.run.missing.append(f"{LIVE_PATHS[0]}: not found (no libvirt logs)")
        if not found & set(LIVE_PATHS[1:]):
            self.run.missing.append(f"{' or '.join(LIVE_PATHS[1:])}: not found")

    def _note_empty(self, args: list[str]) -> None:
        """A folder or archive given (or found live) from which no file was read."""
        for arg in args:
            if arg == STDIN or not Path(arg).exists() or Path(arg).is_file() and not TAR_RE.search(arg):
                continue
            if not any(name.startswith(arg) for name in self.run.read):
                self.run.missing.append(f"{arg}: no log file logsense knows in it")

    def _collection(self, col: Collection) -> Iterator[Event]:
        hosts = formats.HostOf(self.opts.host or col.host)
        for xml in col.domain_xml:
            self.core.learn_domain_xml(xml)
        detected: list[tuple[int, int, LogFile, str, bytes]] = []
        for n, lf in enumerate(col.files):
            fmt, head = self._detect(lf)
            if fmt is not None:
                detected.append((formats.FORMAT_ORDER.get(fmt, 5), n, lf, fmt, head))
        detected.sort(key=lambda t: (t[0], t[1]))
        for _, _, _, fmt, head in detected:
            hosts.learn(fmt, head)
        jobs: list[parallel.Job] = [parallel.FileJob(lf, fmt, hosts.host, head) for _, _, lf, fmt, head in detected]
        if col.journal_files:
            names = [col.journal_names.get(f, str(f)) for f in col.journal_files]
            name = names[0] if len(names) == 1 else str(Path(names[0]).parent)
            jobs.append(parallel.JournalJob(col.journal_files, hosts.host, name))
        if self._worth_workers(jobs):
            yield from self._from_workers(jobs, hosts)
            return
        for job in jobs:
            yield from self._read_job(job, hosts)

    def _read_job(self, job: parallel.Job, hosts: formats.HostOf) -> Iterator[Event]:
        """One file's (or the journal's) events, read in this process."""
        # the host as it stands when the job's reading starts (a syslog line read before may name it)
        if isinstance(job, parallel.FileJob):
            records = self._read_file(job.file, job.fmt, hosts.host, job.head)
        else:
            records = self._journal_records(job.files, hosts.host, job.name)
        for rec in records:
            hosts.apply(rec)
            if (ev := self.core.take(rec)) is not None:
                yield ev

    def _worth_workers(self, jobs: list[parallel.Job]) -> bool:
        """Whether a host's files go to worker processes: --jobs above 1 and enough bytes. Not
        with --all: every line is then an event, so a worker would hand back its whole file at
        once (memory grows with the file: 1.2 GB at 2 M lines) for no gain (writing the events
        is the work)."""
        if self.opts.jobs <= 1 or not jobs or self.opts.all_lines:
            return False
        size = 0
        for job in jobs:
            for path in [job.file.path] if isinstance(job, parallel.FileJob) else job.files:
                try:
                    st = path.stat()
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    return False  # a pipe is read once, by the process that detected its format
                size += st.st_size
        return size >= parallel.parallel_bytes()

    def _from_workers(self, jobs: list[parallel.Job], hosts: formats.HostOf) -> Iterator[Event]:
        """The events of a host's jobs read by workers, taken in reading order as in-process (`take`):
        the worker gave each record's verdict; what depends on the records before it happens here.
        This process is the N-th of --jobs N: it reads the next job no worker has started."""
        if self._workers is None:
            self._workers = parallel.Workers(self.opts.jobs - 1, self.opts.catalogue_dirs, self.opts.disable)
        for job, got in parallel.results(self._workers, self.opts, jobs):
            if got is None:
                yield from self._read_job(job, hosts)
                continue
            self.used_workers = True
            if self._on_file is not None:
                self._on_file(job.name)
            for msg, unread in got.warnings:
                self.warn(msg, unread)
            self.run.read.extend(got.read)
            for key, value in got.stats.items():
                if value and isinstance(value, int | float) and key in self.run.stats:
                    self.run.stats[key] += value
            self.cat.timeouts.update(dict(got.timeouts))
            for rec, taught, ev in parallel.decode(got, self.cat):
                hosts.apply(rec)
                if taught:
                    self.core.entities.learn(rec)
                if ev is not None and (ev := self.core.admit(ev)) is not None:
                    yield ev

    def _detect(self, lf: LogFile) -> tuple[str | None, bytes]:
        """The file's format and first bytes (damage is reported when the file is read)."""
        try:
            with lf.open(lambda _msg: None) as stream:
                head = stream.read(formats.HEAD_BYTES)
        except OSError as exc:
            self.warn(f"{lf.name}: cannot read: {exc.strerror or exc}")
            return None, b""
        fmt = formats.detect(lf.name, head, lf.explicit,
                             knows=lambda msg: any(self.cat.match(msg, s) is not None for s in SOURCES))
        if fmt is None:
            self.run.stats["files_skipped"] += 1
            if lf.explicit:  # a folder's other files (notes, XML, binaries) are skipped quietly
                self.warn(f"{lf.name}: not a log format logsense knows, skipped")
        return fmt, head

    def _read_file(self, lf: LogFile, fmt: str, host: str | None, head: bytes) -> Iterator[Record]:
        stats = self.run.stats
        stats["files_read"] += 1
        if self._on_file is not None:
            self._on_file(lf.name)
        try:
            stream = lf.open(self.warn)
        except OSError as exc:
            self.warn(f"{lf.name}: cannot read: {exc.strerror or exc}")
            return
        self.run.read.append(lf.name)
        with stream:
            if fmt == "journal-export":
                n = 0
                for n, rec in enumerate(journal.read_export(stream, lf.name, host, self.warn), 1):  # noqa: B007
                    yield rec
                stats["lines_read"] += n
                return
            if fmt == "journal-json":
                n = 0
                for n, rec in enumerate(journal.read_json(stream, lf.name, host, self.warn), 1):  # noqa: B007
                    yield rec
                stats["lines_read"] += n
                return
            ctx = self._context(lf, fmt, host, head)
            parser = formats.new_parser(fmt, ctx)
            select = None if self.opts.all_lines else self.cat.selector(ctx.source or parser.source)
            reader = LineReader(parser, fast=formats.fast_path_ok(fmt))
            try:
                yield from read_stream(stream, reader, select)
            except OSError as exc:
                self.warn(f"{lf.name}: read failed: {exc}")
            for key in ("lines_read", "unparsed_lines", "long_lines"):
                stats[key] += ctx.stats.get(key, 0)
            if ctx.stats.get("long_lines"):
                self.warn(f"{lf.name}: {ctx.stats['long_lines']} line(s) longer than "
                          f"{MAX_LINE} bytes were cut", unread=False)

    def _context(self, lf: LogFile, fmt: str, host: str | None, head: bytes):
        tz = self.opts.tz or parse_zone(None)
        if self.opts.year:
            year, month = self.opts.year, 12
        else:
            newest = datetime.fromtimestamp(lf.content_mtime(), tz)
            year, month = newest.year, newest.month
        return formats.file_context(lf.name, fmt, head, host, tz, year, month)

    def _journal_records(self, files: list[Path], host: str | None, name: str) -> Iterator[Record]:
        self.run.stats["files_read"] += len(files)
        if self._on_file is not None:
            self._on_file(name)
        try:
            for rec in journal.read_journal_files(sorted(files), host, name=name, warn=self.warn):
                self.run.stats["lines_read"] += 1
                yield rec
        except OSError as exc:
            self.warn(f"{files[0].parent}: cannot read journal: {exc}")
            return
        self.run.read.append(name)

    def _live_journal(self) -> Iterator[Event]:
        try:
            from systemd import journal as sdj
            reader = sdj.Reader()
        except (ImportError, OSError) as exc:
            self.warn(f"system journal: cannot open: {exc}")
            return
        entries = 0
        with reader:
            if self.opts.since:
                reader.seek_realtime(self.opts.since)
            for entry in reader:
                entries += 1
                self.run.stats["lines_read"] += 1
                rec = journal.record_or_skip(entry, None, self.opts.host, self.warn)
                if rec is not None and (ev := self.core.take(rec)) is not None:
                    yield ev
        if entries:
            self.run.read.append("system journal")
        elif os.geteuid() != 0 and not journal_groups():
            self.warn("system journal: no entries readable (run as root or in group systemd-journal or adm)")
        else:
            self.run.missing.append("system journal: no entries" + (" in the time range" if self.opts.since else ""))


def journal_groups() -> bool:
    """Whether this user is in a group that may read the whole system journal."""
    import grp

    names = set()
    for gid in os.getgroups():
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return bool(names & {"systemd-journal", "adm", "wheel"})


def stderr_warn(msg: str) -> None:
    """A warning for the user: through the one warning path (`logsense.ingest.log`); names in it
    come from logs and archives, so control characters are escaped."""
    log_warn(one_line(msg))
