"""`logsense watch`: the pipeline, live. Follow files and the journal, classify and correlate
with the very objects `analyze` uses, emit incidents as they open, change and resolve.

One loop, one thread doing the work: inotify (watchdog) and the journal thread only say
*something changed*; the loop reads what is new in every changed source, classifies it,
feeds the correlator in time order, hands the changes to the sinks, and saves the state
(positions after the events they cover, the open windows, undelivered sink queues).

Event time drives the windows. While the logs are idle, a wall-clock tick moves the
correlator's watermark on by the time elapsed since the newest event was read (minus a
small lag for lines that arrive late), exactly as a later line would in a replay: a window
that closes live after `--window` quiet seconds closes in `analyze` at the next line or at
the end of the input.
"""

from __future__ import annotations

import bisect
import math
import os
import queue
import signal
import socket
import sys
import time
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from logsense.attribution import EntityMap
from logsense.catalogue import Catalogue, CatalogueError, load_catalogue
from logsense.config import read_settings
from logsense.correlator import DEFAULT_GAP, MAX_WINDOW, Correlator
from logsense.follow import (
    ROTATED_GRACE,
    FileOptions,
    JournalFollower,
    PathSpec,
    Tailer,
    Waker,
    Watcher,
    raise_descriptor_limit,
)
from logsense.i18n import check_lang
from logsense.ingest.classify import Classifier, Settle
from logsense.ingest.formats import HostOf, is_domain_xml
from logsense.ingest.log import warn
from logsense.lifecycle import DEFAULT_GRACE
from logsense.metrics import Metrics, parse_listen
from logsense.model import Event, Record
from logsense.pipeline import InputError, parse_zone
from logsense.reboot_watch import RebootWatch
from logsense.sinks import QUEUE_MAX, Delivery, SinkError, make_sink, parse_sink_flag
from logsense.state import (
    STATE_FILE,
    Relinker,
    StateFile,
    catalogue_digest,
    entities_from_json,
    entities_to_json,
    event_to_json,
)
from logsense.text import one_line

LIVE_DIRS = ("/var/log/libvirt",)
LIVE_FILES = ("/var/log/messages", "/var/log/syslog")
DOMAIN_XML_DIRS = ("/etc/libvirt/qemu", "/run/libvirt/qemu")  # learnt when watching the live host
LAG = 1.0  # seconds a line may arrive after a later-stamped one and still count as on time
TICK = 0.2  # seconds between watermark ticks while a window is open
MAX_OPEN_FILES = 4096  # followed files held open at once; quieter ones are closed and reopened on change
PASS_RECORDS = 2000  # records one pass takes on: classifying and correlating them is bounded too
PASS_SECONDS = 0.25  # reading one pass may take: whatever the input, the loop comes round (watchdog, signals)
SAFETY_POLL = 10.0  # seconds between checks of every file (a missed inotify event, an overflow)
SAVE_SPACING = 4  # saves take at most a fifth of the time: reading on matters more than saving often
SAVE_EVERY = 1.0  # seconds: positions over benign lines only are saved at most this often
# after emitting; a crash in between re-emits the same incident versions (same id and version)
SAVE_OUTPUTS_EVERY = 0.1
STATUS_EVERY = 5.0
JOURNAL_BATCH = 5000


def _has_type(value: Any, declared: str) -> bool:
    """Whether a config value fits its field's declared type (the annotation's text)."""
    options = [t.strip() for t in declared.split("|")]
    for t in options:
        if t == "None" and value is None:
            return True
        if t in ("bool", "str") and type(value).__name__ == t:
            return True
        if t in ("float", "int") and isinstance(value, int | float) and not isinstance(value, bool):
            return True
        if t.startswith("list[") and isinstance(value, list):
            inner = t[5:-1]
            return all(isinstance(v, dict) if inner.startswith("dict") else _has_type(v, inner) for v in value)
    return "Any" in options


@dataclass
class Config:
    """`/etc/logsense/logsense.toml`; flags override."""

    paths: list[str] = field(default_factory=list)
    journal: bool = True
    journal_dir: str | None = None
    window: float = DEFAULT_GAP
    state_dir: str = "/var/lib/logsense"
    host: str | None = None
    tz: str | None = None
    catalogue: list[str] = field(default_factory=list)
    sinks: list[dict[str, Any]] = field(default_factory=lambda: [{"type": "stdout"}])
    from_start: bool = False
    emit: str = "incidents"
    all_lines: bool = False
    settle: float = 1.5  # seconds a new event waits for what belongs with it (see ingest.classify.Settle)
    metrics: str | None = None  # HOST:PORT of the Prometheus listener (off by default)
    metrics_textfile: str | None = None  # node-exporter textfile collector file
    lang: str | None = None  # language of titles and explanations (en, zh); None: the locale's
    disable: list[str] = field(default_factory=list)
    lookback: int = 1 << 20  # bytes of each file read again when its saved position is lost (state unusable)
    format: str = "json"  # of the stdout sink: json lines, or text for a person at a terminal
    reboot_grace: float = DEFAULT_GRACE  # seconds after a host boot for VMs to run again (logsense/reboot_watch.py)

    @classmethod
    def load(cls, path: str | None, overrides: dict[str, Any]) -> Config:
        cfg = cls()
        data = read_settings(path)  # the file, its conf.d/ drop-ins and patterns/ folder (logsense/config.py)
        if data:
            names = {f.name for f in fields(cls)}
            for key, value in data.items():
                key = key.replace("-", "_")
                if key == "sink":
                    key = "sinks"
                if key not in names:
                    raise InputError(f"{path}: unknown setting {key!r}")
                setattr(cfg, key, value)
        for key, value in overrides.items():
            if value is not None:
                setattr(cfg, key, value)
        cfg.check()
        return cfg

    def check(self) -> None:
        """Every value of the type its field declares, so a bad reload is refused and the old
        config stays (a `window = nan` or `paths = [1, 2]` must not reach the loop)."""
        for f in fields(self):
            value = getattr(self, f.name)
            if not _has_type(value, str(f.type)):
                raise InputError(f"{f.name}: expected {f.type}, got {type(value).__name__} {value!r:.60}")
        if not math.isfinite(self.window) or not 0 < self.window <= MAX_WINDOW:
            raise InputError(f"window must be a number of seconds between 0 and {MAX_WINDOW:.0f}")
        if not isinstance(self.settle, int | float) or not 0 <= self.settle <= 60:
            raise InputError("settle must be a number of seconds from 0 to 60")
        if not math.isfinite(self.reboot_grace) or not 0 <= self.reboot_grace <= MAX_WINDOW:
            raise InputError(f"reboot_grace must be a number of seconds from 0 to {MAX_WINDOW:.0f}")
        if not isinstance(self.lookback, int) or isinstance(self.lookback, bool) or self.lookback < 0:
            raise InputError("lookback must be a whole number of bytes, 0 or more")
        if self.format not in ("json", "text"):
            raise InputError("format must be 'json' or 'text'")
        if self.emit not in ("incidents", "events"):
            raise InputError("emit must be 'incidents' or 'events'")
        try:
            check_lang(self.lang)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        if self.metrics:
            parse_listen(self.metrics)
        for spec in self.sinks:
            try:
                make_sink(spec)
            except SinkError as exc:
                raise InputError(f"sink: {exc}") from exc

    def specs(self) -> list[PathSpec]:
        if self.paths:
            return [PathSpec(os.path.abspath(p)) for p in self.paths]
        files = [p for p in LIVE_FILES if os.path.exists(p)] or [LIVE_FILES[0]]
        return [PathSpec(p) for p in (*LIVE_DIRS, *files)]


def notify(message: str) -> None:
    """sd_notify, harmless without NOTIFY_SOCKET."""
    if not os.environ.get("NOTIFY_SOCKET"):
        return
    try:
        from systemd import daemon

        daemon.notify(message)
    except (ImportError, OSError):
        pass


def watchdog_period() -> float:
    """Seconds within which systemd expects WATCHDOG=1 (0: no watchdog), as sd_watchdog_enabled
    reads it: WATCHDOG_USEC, for this process only when WATCHDOG_PID names another."""
    try:
        usec = int(os.environ.get("WATCHDOG_USEC") or 0)
        pid = int(os.environ.get("WATCHDOG_PID") or os.getpid())
    except ValueError:
        return 0.0
    return usec / 1e6 if usec > 0 and pid == os.getpid() else 0.0


def rotated_grace() -> float:
    """Seconds a rotated file is read on after it went quiet; LOGSENSE_ROTATED_GRACE, unlisted,
    lets tests shorten or lengthen it."""
    text = os.environ.get("LOGSENSE_ROTATED_GRACE")
    try:
        grace = float(text) if text else ROTATED_GRACE
    except ValueError:
        grace = -1.0
    if not grace >= 0:
        warn(f"LOGSENSE_ROTATED_GRACE={text!r} is not a number of seconds; using {ROTATED_GRACE}")
        return ROTATED_GRACE
    return grace


def size_text(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"


def say(message: str) -> None:
    sys.stderr.write(f"logsense: {one_line(message)}\n")  # may name files: untrusted text
    sys.stderr.flush()


class Daemon:
    def __init__(self, cfg: Config, config_file: str | None = None, overrides: dict[str, Any] | None = None) -> None:
        self.cfg = cfg
        self.config_file = config_file
        self.overrides = overrides or {}
        self.wake = Waker()
        self.stopping = False
        self.reload_requested = False
        self.host = cfg.host or socket.gethostname().split(".")[0] or None
        self.tz = parse_zone(cfg.tz)
        self.rotated_grace = rotated_grace()
        self.cat: Catalogue = load_catalogue(cfg.catalogue, cfg.disable)
        self.corr = Correlator(cfg.window)
        self.reboots = RebootWatch(cfg.reboot_grace)  # the VMs' lives: the host-reboot incident
        self.entities = EntityMap()
        self.core = Classifier(self.cat, self.entities, cfg.all_lines)
        self.settling = Settle(self.core, cfg.settle)
        self.hosts = HostOf(self.host)
        self.specs = cfg.specs()
        self.tailers: dict[str, Tailer] = {}
        self.dirty: set[str] = set()
        self.last_polled = ""  # where the next pass starts reading (round robin)
        self.watchdog_every, self.last_watchdog = 0.0, 0.0  # set by run() from WATCHDOG_USEC
        self.max_open = MAX_OPEN_FILES
        self.deliveries: list[Delivery] = []
        self.state_path = Path(cfg.state_dir) / STATE_FILE
        self.state_file = StateFile(self.state_path, warn)
        self.journal_q: queue.Queue[Record] = queue.Queue(maxsize=4 * JOURNAL_BATCH)
        self.journal: JournalFollower | None = None
        self.journal_cursor: str | None = None
        self.journal_since: datetime | None = None  # with state but no cursor: the last save
        self.state_mtime: datetime | None = None  # when the newest state file was written
        self.look_back = False  # no usable state though a daemon ran here: every file is read from `lookback`
        self.look_back_at: set[str] = set()  # the paths whose saved position was unusable: likewise
        self.max_ts: datetime | None = None
        self.max_mono = time.monotonic()
        self.journal_lines = 0
        self.emitted = 0
        self.last_save = 0.0
        self.save_cost = 0.0  # seconds the last save took
        self.positions_moved = False
        self.unsaved_outputs = False
        self._selectors: dict[str, Any] = {}
        self.metrics = Metrics(warn)

    # -- start ------------------------------------------------------------------------------
    def _file_options(self) -> FileOptions:
        return FileOptions(host=self.host, tz=self.tz, rotated_grace=self.rotated_grace)

    def _restore(self) -> dict[str, Any] | None:
        try:
            Path(self.cfg.state_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{self.cfg.state_dir}: cannot create state directory: {exc.strerror or exc}") from exc
        if not os.access(self.cfg.state_dir, os.W_OK):
            raise InputError(f"{self.cfg.state_dir}: state directory is not writable")
        loaded = self.state_file.load()
        state, self.state_mtime, self.look_back_at = loaded.state, loaded.written_at, loaded.dropped_files
        if state is None and loaded.ran_before:  # not a first start: what came while stopped is read
            self.look_back = True
            journal = self.cfg.journal and self.state_mtime is not None
            if journal:
                self.journal_since = self.state_mtime
            warn(one_line(f"{self.state_path}: state unusable ({loaded.why or 'only a temporary file left'}); "
                          f"re-reading the last {size_text(self.cfg.lookback)} of each file"
                          + (f" and the journal since {self.state_mtime:%Y-%m-%d %H:%M:%S %z}" if journal else "")))
        if state is None:
            return None
        same = state.get("catalogue") == catalogue_digest(self.cat)
        if "correlator" in state:
            relink = Relinker(self.cat, same)
            try:
                self.corr = Correlator.from_state(state["correlator"], relink.event, self.cfg.window)
                self.entities = self.core.entities = entities_from_json(state.get("entities") or {})
                self.settling.add([e for e in (relink.event(x) for x in state.get("settling") or []) if e],
                                  time.monotonic())
            except (KeyError, TypeError, ValueError) as exc:
                warn(f"{self.state_path}: open incident windows unusable ({exc}); discarded")
                self.corr = Correlator(self.cfg.window)
            if not same:
                warn(f"{self.state_path}: saved with another catalogue: open windows migrated "
                     f"({relink.reclassified} event(s) reclassified, {relink.dropped} dropped)")
            self.max_ts = self.corr.watermark
        self._restore_lifecycle(state)
        self.journal_cursor = (state.get("journal") or {}).get("cursor")
        if self.cfg.journal and not self.journal_cursor:
            self.journal_since = self._saved_at(state)
        return state

    def _restore_lifecycle(self, state: dict[str, Any]) -> None:
        """The VMs' lives as saved (key `lifecycle`); missing or unusable: started afresh."""
        if "lifecycle" not in state:
            return
        relink = Relinker(self.cat, state.get("catalogue") == catalogue_digest(self.cat))
        try:
            self.reboots = RebootWatch.from_state(state["lifecycle"], relink.event, self.cfg.reboot_grace)
            self.max_ts = self.max_ts or self.reboots.watermark  # a grace period runs on from where it was
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            warn(f"{self.state_path}: VMs' lifecycle state unusable ({exc}); discarded")

    def _saved_at(self, state: dict[str, Any]) -> datetime | None:
        try:
            saved = datetime.fromisoformat(state["saved_at"])
        except (KeyError, TypeError, ValueError):
            if self.state_mtime is None:
                warn(f"{self.state_path}: no usable saved_at; the journal is followed from its end")
            return self.state_mtime  # the state file's own time: when it was saved
        return saved if saved.tzinfo is not None else saved.astimezone()

    def _learn_domain_xml(self) -> None:
        """The domains' XML (disks, taps, uuids, labels) as batch learns it from a tree: under
        the watched paths, and libvirt's own directories when watching the live host."""
        found = [p for spec in self.specs for p in spec.domain_xml()]
        if not self.cfg.paths:
            found += sorted(str(p) for d in DOMAIN_XML_DIRS for p in Path(d).glob("*.xml"))
        for path in found:
            self.core.learn_domain_xml(path)

    def _start_files(self, state: dict[str, Any] | None) -> None:
        self._learn_domain_xml()
        saved_files = (state or {}).get("files") or {}
        first_start = state is None and not self.look_back
        for spec in self.specs:
            for path in spec.files():
                if path in self.tailers:
                    continue
                t = Tailer(path, self._file_options(), warn)
                if path in saved_files:
                    t.resume(saved_files[path])
                elif self.look_back or path in self.look_back_at:  # its saved position is lost
                    t.open_back(self.cfg.lookback)
                else:
                    t.open(at_end=first_start and not self.cfg.from_start)
                self.tailers[path] = t
                if len(self.tailers) > self.max_open:
                    t.suspend()  # its first poll reopens it; the first max_open stay open
                self.dirty.add(path)
        # a path rotated away while logsense was stopped, its new file not created yet: the
        # rest of the old one is read now, the new one when it appears
        for path, saved in saved_files.items():
            if path not in self.tailers and any(s.wants(path) for s in self.specs):
                t = Tailer(path, self._file_options(), warn)
                if t.resume_rotated(saved):
                    self.tailers[path] = t
                    self.dirty.add(path)

    def _start_sinks(self, state: dict[str, Any] | None) -> None:
        saved = (state or {}).get("sinks") or {}
        old = {d.name: d for d in self.deliveries}
        new = []
        for spec in self.cfg.sinks:
            sink = make_sink({"format": self.cfg.format, **spec} if spec.get("type") == "stdout" else spec)
            sink.lang = check_lang(self.cfg.lang)
            queue_max = int(spec.get("queue_max", QUEUE_MAX))
            if sink.name in old:
                new.append(old.pop(sink.name))
                new[-1].reconfigure(sink, queue_max)
            else:
                queued = saved.get(sink.name) if isinstance(saved.get(sink.name), list) else None
                new.append(Delivery(sink, warn, queued, queue_max))
        for d in old.values():
            d.wait_idle(2.0)
            d.stop()
        self.deliveries = new

    def _start_journal(self) -> None:
        if not self.cfg.journal:
            return
        self.journal = JournalFollower(self.journal_q, self.wake, self.host, warn, directory=self.cfg.journal_dir,
                                       cursor=self.journal_cursor, from_start=self.cfg.from_start,
                                       since=self.journal_since)
        self.journal.start()
        self.journal.ready.wait(10)

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        state = self._restore()
        self._start_sinks(state)
        if url := self.metrics.serve(self.cfg.metrics, self.cfg.metrics_textfile):
            say(f"metrics on {url}")
        self.max_open = max(16, min(MAX_OPEN_FILES, raise_descriptor_limit() // 2))  # half for sockets, state
        self.watcher = Watcher(self.wake)
        self.watcher.watch(self.specs)
        self.watcher.start()
        self._start_files(state)
        self._start_journal()
        self._save()  # the starting positions: a crash before the first batch must not skip lines
        for spec in self.specs:
            if not spec.is_glob and not os.path.exists(spec.text):
                warn(f"{spec.text} does not exist yet; it will be read from its start when it appears")
        watching = f"watching {len(self.tailers)} files"
        if self.journal is not None and not self.journal.failed:
            watching += " and the journal"
        say(watching)
        notify("READY=1\nSTATUS=" + watching)
        watchdog_every = watchdog_period() / 2
        self.watchdog_every, self.last_watchdog = watchdog_every, time.monotonic()
        last_status = last_safety = time.monotonic()
        lines_then, open_then = 0, 0
        more = True
        try:
            while not self.stopping:
                if not more:
                    self.wake.wait(self._timeout(watchdog_every))
                self.wake.clear()
                if self.reload_requested:
                    self.reload_requested = False
                    self._reload()
                now = time.monotonic()
                if now - last_safety >= SAFETY_POLL:
                    self.dirty.update(self.tailers)
                    last_safety = now
                more = self._pass()
                self.metrics.observe(self)
                now = time.monotonic()
                self._keepalive()
                # every few seconds, and at once when an incident opens or closes
                if now - last_status >= STATUS_EVERY or len(self.corr.open) != open_then:
                    lines, open_then = self._lines_read(), len(self.corr.open)
                    rate = (lines - lines_then) / max(now - last_status, 1e-6)
                    notify(f"STATUS={rate:.0f} lines/s, {open_then} open incident(s), {len(self.tailers)} files")
                    lines_then, last_status = lines, now
        finally:
            self._shutdown()
        return 0

    def _keepalive(self) -> None:
        """WATCHDOG=1 when half the watchdog period has passed: from the loop, and between the
        stages of a pass, so a big pass that is making progress is not taken for a hung one."""
        now = time.monotonic()
        if self.watchdog_every and now - self.last_watchdog >= self.watchdog_every:
            notify("WATCHDOG=1")
            self.last_watchdog = now

    def _timeout(self, watchdog_every: float) -> float:
        waits = [SAFETY_POLL, STATUS_EVERY]
        if watchdog_every:
            waits.append(watchdog_every)
        if self.corr.open or self.corr.pending or self.reboots.waiting:
            waits.append(TICK)
        if (settle_due := self.settling.due()) is not None:
            waits.append(max(0.0, settle_due - time.monotonic()))
        if self.unsaved_outputs:
            waits.append(SAVE_OUTPUTS_EVERY)
        elif self.positions_moved:
            waits.append(SAVE_EVERY)
        due = [d for t in self.tailers.values() if (d := t.rotated_due()) is not None]
        if due:
            waits.append(max(0.0, min(due) - time.monotonic()))
        return min(waits)

    def _lines_read(self) -> int:
        return sum(t.lines_read for t in self.tailers.values()) + self.journal_lines

    def _pass(self) -> bool:
        """One batch: what changed, read, classified, correlated, emitted, saved. True when
        more input is already waiting."""
        more = self._take_changes()
        records: list[Record] = []
        budget = time.monotonic() + PASS_SECONDS
        open_now = sum(1 for t in self.tailers.values() if t.fd is not None)
        for path in self._dirty_in_turn():
            if time.monotonic() > budget or len(records) >= PASS_RECORDS:  # the rest next pass: the loop
                # (and its watchdog) comes round however much is waiting
                more = True
                break
            self.last_polled = path
            t = self.tailers.get(path)
            if t is None:
                self.dirty.discard(path)
                continue
            was_open = t.fd is not None
            if not was_open and open_now >= self.max_open:
                more = True  # read when a descriptor is free again (quiet files are closed below)
                continue
            recs, t_more = t.poll(self._selector)
            open_now += (t.fd is not None) - was_open
            if not t_more and open_now >= self.max_open and t.suspend():  # make room for the next
                open_now -= 1
            self.metrics.file_read(t)
            records.extend(recs)
            self.positions_moved = True
            if not t_more:
                self.dirty.discard(path)
            more = more or t_more
        for _ in range(JOURNAL_BATCH):
            try:
                records.append(self.journal_q.get_nowait())
            except queue.Empty:
                break
        else:
            more = True
        self._keepalive()
        outputs = self._process(records)
        self._keepalive()
        outputs.extend(self._tick())
        self.metrics.outputs(outputs)
        if outputs:
            for d in self.deliveries:
                d.put(outputs)
            self.emitted += len(outputs)
            for d in self.deliveries:
                d.wait_idle(0.5)
            self.unsaved_outputs = True
        since = time.monotonic() - self.last_save
        spacing = SAVE_SPACING * self.save_cost  # a big state (a burst's open windows) is saved less often
        if self.unsaved_outputs and since >= max(SAVE_OUTPUTS_EVERY, spacing) or \
                self.positions_moved and since >= max(SAVE_EVERY, spacing):
            self._keepalive()
            self._save()
        self._close_quiet_files()
        return more

    def _close_quiet_files(self) -> None:
        """Keep at most max_open files open: the longest quiet ones are suspended (closed, their
        position kept) and reopened when they change."""
        open_now = [t for p, t in self.tailers.items() if t.fd is not None and p not in self.dirty]
        excess = sum(1 for t in self.tailers.values() if t.fd is not None) - self.max_open
        if excess > 0:
            for t in sorted(open_now, key=lambda t: t.data_at)[:excess]:
                t.suspend()

    def _dirty_in_turn(self) -> list[str]:
        """Dirty paths in name order, starting after the one polled last: when a pass runs out of
        time, no file waits behind the same others every pass."""
        order = sorted(self.dirty)
        i = bisect.bisect_right(order, self.last_polled)
        return order[i:] + order[:i]

    def _selector(self, source: str):
        if self.cfg.all_lines:
            return None
        if source not in self._selectors:
            self._selectors[source] = self.cat.selector(source)
        return self._selectors[source]

    def _take_changes(self) -> bool:
        changed, dirs = self.watcher.take()
        if dirs:
            self.watcher.watch(self.specs)
            for spec in self.specs:
                for path in spec.files():
                    changed.add(path)
        now = time.monotonic()
        draining = []  # paths with rotated files still read: their names start with the path
        for path, t in self.tailers.items():
            if t.rotated:
                draining.append(path)
                due = t.rotated_due()
                if due is not None and due <= now:
                    self.dirty.add(path)
        for path in changed:
            if is_domain_xml(path) and os.path.isfile(path) and any(path.startswith(s.root) for s in self.specs):
                self.core.learn_domain_xml(path)  # a domain defined or changed
                continue
            if path in self.tailers:
                self.dirty.add(path)
                continue
            if owner := next((p for p in draining if path.startswith(p)), None):
                self.dirty.add(owner)
            if os.path.isfile(path) and not os.path.islink(path) and any(s.wants(path) for s in self.specs):
                if self._already_followed(path):  # a rotated name logsense does not know: same file
                    continue
                t = Tailer(path, self._file_options(), warn)
                if t.open(at_end=False):  # a file that appears later: from its beginning
                    self.tailers[path] = t
                    self.dirty.add(path)
        return False

    def _already_followed(self, path: str) -> bool:
        """Whether `path` is a new name for a file already read (identity, not name, decides:
        logrotate's dateext formats are many)."""
        try:
            st = os.stat(path)
        except OSError:
            return False
        if any((st.st_dev, st.st_ino) in t.identities() for t in self.tailers.values()):
            return True
        # a name extending a followed path's is one of its generations: that tailer reads it
        # (by identity, on rotation) if it was never read, so it is not a log of its own
        return any(path.startswith(p) and path != p for p in self.tailers)

    def _process(self, records: list[Record], force: bool = False) -> list[dict[str, Any]]:
        """Records through the shared core; the events that have settled (`force`: all of
        them) into the correlator; what is to be emitted."""
        return self._emit(self._ingest(records, force))

    def _ingest(self, records: list[Record], force: bool = False) -> list[Event]:
        """Records through the shared core (`logsense.ingest.classify`): the events that have
        settled (`force`: all of them), VMs resolved, in time order."""
        events: list[Event] = []
        self.metrics.records(records)
        for n, rec in enumerate(records):
            if n % 256 == 0:
                self._keepalive()
            self.hosts.apply(rec)
            if rec.cursor:  # only journal entries carry one
                self.journal_cursor = rec.cursor
                self.journal_lines += 1
                self.positions_moved = True
            if (ev := self.core.take(rec)) is not None:
                events.append(ev)
        now = time.monotonic()
        self.settling.add(events, now)
        events = self.settling.release(now, force)
        if events:
            self.positions_moved = True  # the settle buffer changed: saved with the positions, once a second
        self.metrics.classified(events)
        return events

    def _emit(self, events: list[Event]) -> list[dict[str, Any]]:
        outputs: list[dict[str, Any]] = []
        emit_events = self.cfg.emit == "events"
        for n, ev in enumerate(events):
            if n % 256 == 0:
                self._keepalive()
            if emit_events:
                outputs.append(ev.to_dict())
                continue
            if self.max_ts is None or ev.ts > self.max_ts:
                self.max_ts = ev.ts
            self.max_mono = time.monotonic()
            changed = [inc.to_dict(check_lang(self.cfg.lang)) for inc in self.corr.feed(ev)]
            outputs.extend(self._lifecycle(ev.ts, ev, changed))
        return outputs

    def _lifecycle(self, now: datetime, ev: Event | None, changed: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Beside the correlator, the VMs' lives (logsense/reboot_watch.py): the correlator's
        `changed`, then the reboot incidents that opened or changed by `now`; `ev` joins the lives."""
        self.reboots.note(changed)
        out = changed + self.reboots.advance(now, check_lang(self.cfg.lang))
        if self.reboots.sent_again:  # a failed start sent again naming a reboot incident
            for inc in self.corr.open.values():
                inc.version = max(inc.version, self.reboots.sent_again.get(inc.id, 0))
            self.reboots.sent_again.clear()
        if ev is not None:
            self.reboots.feed(ev)
        return out

    def _tick(self) -> list[dict[str, Any]]:
        """While the logs are idle, event time moves on with the wall clock."""
        if self.max_ts is None or not (self.corr.open or self.corr.pending or self.reboots.waiting):
            return []
        idle = time.monotonic() - self.max_mono - LAG
        if idle <= 0:
            return []
        lang = check_lang(self.cfg.lang)
        now = self.max_ts + timedelta(seconds=idle)
        return self._lifecycle(now, None, [inc.to_dict(lang) for inc in self.corr.advance(now)])

    # -- state ------------------------------------------------------------------------------
    def _save(self) -> None:
        t0 = time.monotonic()
        files = {}
        for path, t in self.tailers.items():
            if (saved := t.saved()) is not None:
                files[path] = saved
        data = {
            "version": 1,
            "catalogue": catalogue_digest(self.cat),
            "saved_at": datetime.now().astimezone().isoformat(),
            "host": self.host,
            "files": files,
            "journal": {"cursor": self.journal_cursor} if self.journal_cursor else {},
            "correlator": self.corr.to_state(event_to_json),
            "lifecycle": self.reboots.to_state(event_to_json),
            "entities": entities_to_json(self.entities),
            "settling": [event_to_json(e) for e in self.settling.held],
            "sinks": {d.name: d.pending() for d in self.deliveries if d.pending()},
        }
        if not self.state_file.save(data):  # said by state_file, rate-limited
            return
        self.last_save = time.monotonic()
        self.save_cost = self.last_save - t0
        self.positions_moved = self.unsaved_outputs = False

    # -- signals ----------------------------------------------------------------------------
    def _on_stop(self, signum, frame) -> None:
        self.stopping = True
        self.wake.set()

    def _on_hup(self, signum, frame) -> None:
        self.reload_requested = True
        self.wake.set()

    def _reload(self) -> None:
        try:
            cfg = Config.load(self.config_file, self.overrides)
        except InputError as exc:
            say(f"error: config reload failed, keeping the old one: {exc}")
            return
        try:
            cat = load_catalogue(cfg.catalogue, cfg.disable)
            if cat.problems:
                raise CatalogueError(cat.problems)
        except CatalogueError as exc:
            problems = exc.problems
            say(f"error: catalogue reload failed, keeping the old one: {problems[0]}"
                + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
            cat = self.cat
        if cat is not self.cat:
            self._relink(cat)
            self.cat = self.core.cat = cat
            self._selectors = {}
        self.cfg = cfg
        self.core.all_lines = cfg.all_lines
        self.settling.settle = cfg.settle
        self.corr.set_gap(cfg.window)
        self.reboots.set_grace(cfg.reboot_grace)
        known = {s.text for s in self.specs}
        self.specs = cfg.specs()
        self.watcher.watch(self.specs)
        self._learn_domain_xml()
        for spec in self.specs:
            for path in spec.files():
                if path not in self.tailers:
                    # a path newly configured starts at its end, like a first start; a file
                    # that appeared under a path already followed, from its beginning
                    t = Tailer(path, self._file_options(), warn)
                    if t.open(at_end=spec.text not in known and not cfg.from_start):
                        self.tailers[path] = t
                        self.dirty.add(path)
        self._start_sinks(None)
        say(f"reloaded: {len(cat.patterns)} patterns, watching {len(self.tailers)} files")

    def _relink(self, cat: Catalogue) -> None:
        """SIGHUP with a new catalogue: open windows and held events go through the very code a
        restart uses (saved as plain values, restored by `Relinker`): re-linked by pattern id,
        classified again when their pattern changed or is gone."""
        relink = Relinker(cat, catalogue_digest(cat) == catalogue_digest(self.cat))
        self.corr = Correlator.from_state(self.corr.to_state(event_to_json), relink.event, self.cfg.window)
        held, self.settling.held, self.settling.arrived = self.settling.held, [], []
        self.settling.add([e for e in (relink.event(event_to_json(x)) for x in held) if e], time.monotonic())
        if relink.reclassified or relink.dropped:
            warn(f"catalogue changed: open windows migrated ({relink.reclassified} event(s) reclassified, "
                 f"{relink.dropped} dropped)")

    def _shutdown(self) -> None:
        if self.journal is not None:
            self.journal.stop()
        self.watcher.stop()
        for d in self.deliveries:
            d.wait_idle(5.0)
        self._save()
        self.metrics.observe(self, force=True)
        self.metrics.close()
        for d in self.deliveries:
            d.stop()
        for t in self.tailers.values():
            t.close()
        if self.journal is not None:
            self.journal.join(timeout=2)


def watch(cfg_file: str | None, overrides: dict[str, Any], sink_flags: list[str] | None) -> int:
    """The `logsense watch` command."""
    if sink_flags:
        try:
            overrides = {**overrides, "sinks": [parse_sink_flag(s) for s in sink_flags]}
        except SinkError as exc:
            raise InputError(f"--sink: {exc}") from exc
    cfg = Config.load(cfg_file, overrides)
    return Daemon(cfg, cfg_file, overrides).run()
