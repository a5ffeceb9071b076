"""One archive on every core: each file (and a host's journal) is parsed and classified in a
worker process; the parent takes the results back in reading order and does what needs every
line before it — the host a tree names, duplicate messages, the VMs lines name near each other,
the links the VM map learns — exactly as one process would (logsense/pipeline.py `Reader`).

A worker sends compact columns, not objects: the kept records' fields a column each (a list of
strings pickles as fast as its bytes), UTC times as integer microseconds (a datetime pickles ten
times slower), whether each taught the VM map something, and each verdict (pattern index, fields,
category, severity, role, shape); the columns of small dicts and tuples are pickled apart without
pickle's memo, which costs more than they do. It keeps a record only when it is an event, teaches
a link (a QEMU command line, a pid line), or is the first of its job to name a host; the other
lines stay in the worker.
"""

from __future__ import annotations

import gc
import io
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, fields
from datetime import UTC, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from logsense.catalogue import Catalogue, load_catalogue
from logsense.model import EPOCH, Event, Record
from logsense.sources import LogFile

if TYPE_CHECKING:
    from logsense.pipeline import Options

PARALLEL_BYTES = 32 << 20  # a host's files smaller than this are read in-process: starting workers costs more
BYTES_ENV = "LOGSENSE_PARALLEL_BYTES"  # tests set 0 to take the worker road with small fixtures
RECORD_FIELDS = tuple(f.name for f in fields(Record))
PACKED = frozenset({"extra"})  # columns of containers, pickled without the memo
ONE_US = timedelta(microseconds=1)


def parallel_bytes() -> int:
    """The size from which a host's files are read by workers (LOGSENSE_PARALLEL_BYTES overrides)."""
    value = os.environ.get(BYTES_ENV, "")
    return int(value) if value.isdigit() else PARALLEL_BYTES


def default_jobs() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class FileJob:
    """One line-format or journal-export file, as the parent detected it."""

    file: LogFile
    fmt: str
    host: str | None
    head: bytes

    @property
    def name(self) -> str:
        return self.file.name


@dataclass(frozen=True)
class JournalJob:
    """A host's binary journal files, read together (entries interleave across them)."""

    files: list[Path]
    host: str | None
    name: str


Job = FileJob | JournalJob


class Outcome(NamedTuple):
    """What a job gives back, all plain values."""

    columns: list[list | bytes]  # the kept records: one list per field of Record (PACKED ones pickled)
    taught: bytes  # per kept record: 1 if it taught the VM map a link
    verdicts: bytes  # per kept record, pickled: its event's verdict, or None
    warnings: list[tuple[str, bool]]  # (text, about input not read), in the order they were given
    read: list[str]
    stats: dict[str, Any]
    timeouts: list[tuple[str, int]]  # pattern id -> lines it timed out on, in first-seen order


# -- in the worker -----------------------------------------------------------------------------
_catalogue: Catalogue | None = None
_pattern_index: dict[int, int] = {}


def _start_worker(dirs: list[str], disable: list[str]) -> None:
    """Load the catalogue (and its scanner) once per worker. Ctrl-C is the parent's to handle:
    it stops the pool, so a worker never prints a traceback of its own; and a worker whose parent
    is gone (killed) ends too."""
    global _catalogue, _pattern_index
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_end_with, args=(parent.sentinel,), daemon=True).start()
    _catalogue = load_catalogue(dirs, disable)
    _pattern_index = {id(p): i for i, p in enumerate(_catalogue.patterns)}
    gc.freeze()  # the catalogue stays: never scanned again
    gc.set_threshold(100_000, 50, 100)  # a job makes many small objects that live until it ends


def _end_with(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


def read_job(opts: Options, job: Job) -> Outcome:
    """Parse and classify one job's records (runs in a worker)."""
    from logsense.pipeline import Reader

    assert _catalogue is not None
    _catalogue.timeouts = Counter()
    reader = Reader(opts, _catalogue)
    if isinstance(job, FileJob):
        records = reader._read_file(job.file, job.fmt, job.host, job.head)
    else:
        records = reader._journal_records(job.files, job.host, job.name)
    entities, core = reader.run.entities, reader.core
    host_unknown = job.host is None
    columns: list[list] = [[] for _ in RECORD_FIELDS]
    taught_flags = bytearray()
    verdicts: list[tuple | None] = []
    for rec in records:
        told, vms = entities.told, len(entities.vms)
        entities.learn(rec)
        taught = entities.told != told or len(entities.vms) != vms
        ev = core.verdict(rec)
        names_host = host_unknown and bool(rec.host)
        if ev is not None or taught or names_host:
            host_unknown = host_unknown and not names_host
            for column, name in zip(columns, RECORD_FIELDS, strict=True):
                column.append(getattr(rec, name))
            if rec.ts.tzinfo is UTC:
                columns[0][-1] = (rec.ts - EPOCH) // ONE_US
            taught_flags.append(taught)
            verdicts.append(verdict(ev))
    run = reader.run
    unread = iter(run.missing)
    pending = next(unread, None)
    warnings = []
    for msg in run.warnings:  # run.missing is the part of run.warnings about input not read
        warnings.append((msg, msg == pending))
        if msg == pending:
            pending = next(unread, None)
    packed = [pack(col) if name in PACKED else col for name, col in zip(RECORD_FIELDS, columns, strict=True)]
    return Outcome(packed, bytes(taught_flags), pack(verdicts), warnings, run.read, run.stats,
                   list(_catalogue.timeouts.items()))


def pack(values: list) -> bytes:
    """Containers without pickle's memo (no value is shared or recursive in them)."""
    out = io.BytesIO()
    pickler = pickle.Pickler(out, pickle.HIGHEST_PROTOCOL)
    pickler.fast = True
    pickler.dump(values)
    return out.getvalue()


def verdict(ev: Event | None) -> tuple | None:
    if ev is None:
        return None
    p = _pattern_index[id(ev.pattern)] if ev.pattern is not None else None
    return (p, ev.fields, ev.category, ev.severity, ev.role, ev.shape)


# -- in the parent -----------------------------------------------------------------------------
def decode(got: Outcome, cat: Catalogue) -> Iterator[tuple[Record, bool, Event | None]]:
    """A job's kept records in reading order: the record, whether it teaches the VM map, and its
    event (VM not yet resolved)."""
    patterns = cat.patterns
    columns = [pickle.loads(col) if isinstance(col, bytes) else col for col in got.columns]
    columns[0] = [EPOCH + ONE_US * t if type(t) is int else t for t in columns[0]]
    for row, taught, v in zip(zip(*columns, strict=True), got.taught, pickle.loads(got.verdicts), strict=True):
        rec = Record(*row)
        if v is None:
            yield rec, bool(taught), None
            continue
        p, ev_fields, category, severity, role, shape = v
        yield rec, bool(taught), Event(rec, patterns[p] if p is not None else None, ev_fields, None,
                                       category, severity, role, shape)


class Workers:
    """A pool of worker processes with the catalogue of `catalogue_dirs` less `disable` loaded;
    closing it (also on Ctrl-C or an error) ends them. `share`: the parent reads the jobs no
    worker has started yet when it needs them (off: the workers read every job)."""

    def __init__(self, processes: int, catalogue_dirs: list[str], disable: list[str], share: bool = True) -> None:
        self.catalogue = (list(catalogue_dirs), list(disable))
        self.share = share
        self.pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_start_worker, initargs=self.catalogue)

    def submit(self, opts: Options, job: Job) -> Future[Outcome]:
        if (opts.catalogue_dirs, opts.disable) != self.catalogue:
            raise ValueError("these workers hold another catalogue")  # pattern indices would not agree
        return self.pool.submit(read_job, opts, job)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def abort(self) -> None:
        """End the workers now, mid-job: Ctrl-C must not wait for a big file to be read."""
        for proc in list((self.pool._processes or {}).values()):  # no public way before Python 3.14
            proc.terminate()
        self.close()


def results(workers: Workers, opts: Options, jobs: list[Job]) -> Iterator[tuple[Job, Outcome | None]]:
    """Every job's outcome, in the order given (the workers run ahead); None for a job the caller
    reads itself (`Workers.share`): the first, while the workers start, and each one no worker had
    started when its turn came."""
    own = 1 if workers.share else 0
    futures: list[Future[Outcome] | None] = [None] * own + [workers.submit(opts, job) for job in jobs[own:]]
    try:
        for job, fut in zip(jobs, futures, strict=True):
            yield job, None if fut is None or workers.share and fut.cancel() else fut.result()
    except BaseException:  # Ctrl-C, an error, or the reader stopped early: the rest is not wanted
        workers.abort()
        raise
