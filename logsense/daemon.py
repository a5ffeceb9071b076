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
from logsense.correlator import DEFAULT_GAP, Correlator
from logsense.follow import ROTATED_GRACE, FileOptions, JournalFollower, PathSpec, Tailer, Waker, Watcher
from logsense.i18n import check_lang
from logsense.metrics import Metrics, parse_listen
from logsense.model import Event, Record
from logsense.pipeline import InputError, classify, parse_zone
from logsense.sinks import QUEUE_MAX, Delivery, SinkError, make_sink, parse_sink_flag
from logsense.state import (
    STATE_FILE,
    Relinker,
    catalogue_digest,
    entities_from_json,
    entities_to_json,
    event_to_json,
    read_state,
    write_atomic,
)
from logsense.text import one_line

LIVE_DIRS = ("/var/log/libvirt",)
LIVE_FILES = ("/var/log/messages", "/var/log/syslog")
LAG = 1.0  # seconds a line may arrive after a later-stamped one and still count as on time
TICK = 0.2  # seconds between watermark ticks while a window is open
SAFETY_POLL = 10.0  # seconds between checks of every file (a missed inotify event, an overflow)
SAVE_EVERY = 1.0  # seconds: positions over benign lines only are saved at most this often
# after emitting; a crash in between re-emits the same incident versions (same id and version)
SAVE_OUTPUTS_EVERY = 0.1
STATUS_EVERY = 5.0
JOURNAL_BATCH = 5000


MAX_WINDOW = 7 * 86400.0  # seconds: a longer window is a typo, and its arithmetic overflows dates


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
    metrics: str | None = None  # HOST:PORT of the Prometheus listener (off by default)
    metrics_textfile: str | None = None  # node-exporter textfile collector file
    lang: str | None = None  # language of titles and explanations (en, zh); None: the locale's
    disable: list[str] = field(default_factory=list)
    format: str = "json"  # of the stdout sink: json lines, or text for a person at a terminal

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


def say(message: str) -> None:
    sys.stderr.write(f"logsense: {one_line(message)}\n")  # may name files: untrusted text
    sys.stderr.flush()


def warn(message: str) -> None:
    say(f"warning: {message}")


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
        self.entities = EntityMap()
        self.specs = cfg.specs()
        self.tailers: dict[str, Tailer] = {}
        self.dirty: set[str] = set()
        self.deliveries: list[Delivery] = []
        self.state_path = Path(cfg.state_dir) / STATE_FILE
        self.journal_q: queue.Queue[Record] = queue.Queue(maxsize=4 * JOURNAL_BATCH)
        self.journal: JournalFollower | None = None
        self.journal_cursor: str | None = None
        self.journal_since: datetime | None = None  # with state but no cursor: the last save
        self.max_ts: datetime | None = None
        self.max_mono = time.monotonic()
        self.journal_lines = 0
        self.emitted = 0
        self.last_save = 0.0
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
        state = read_state(self.state_path, warn)
        if state is None:
            return None
        same = state.get("catalogue") == catalogue_digest(self.cat)
        if "correlator" in state:
            relink = Relinker(self.cat, same)
            try:
                self.corr = Correlator.from_state(state["correlator"], relink.event, self.cfg.window)
                self.entities = entities_from_json(state.get("entities") or {})
            except (KeyError, TypeError, ValueError) as exc:
                warn(f"{self.state_path}: open incident windows unusable ({exc}); discarded")
                self.corr = Correlator(self.cfg.window)
            if not same:
                warn(f"{self.state_path}: saved with another catalogue: open windows migrated "
                     f"({relink.reclassified} event(s) reclassified, {relink.dropped} dropped)")
            self.max_ts = self.corr.watermark
        self.journal_cursor = (state.get("journal") or {}).get("cursor")
        if self.cfg.journal and not self.journal_cursor:
            self.journal_since = self._saved_at(state)
        return state

    def _saved_at(self, state: dict[str, Any]) -> datetime | None:
        try:
            saved = datetime.fromisoformat(state["saved_at"])
        except (KeyError, TypeError, ValueError):
            warn(f"{self.state_path}: no usable saved_at; the journal is followed from its end")
            return None
        return saved if saved.tzinfo is not None else saved.astimezone()

    def _start_files(self, state: dict[str, Any] | None) -> None:
        saved_files = (state or {}).get("files") or {}
        first_start = state is None
        for spec in self.specs:
            for path in spec.files():
                if path in self.tailers:
                    continue
                t = Tailer(path, self._file_options(), warn)
                if path in saved_files:
                    t.resume(saved_files[path])
                else:
                    t.open(at_end=first_start and not self.cfg.from_start)
                self.tailers[path] = t
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
        last_watchdog = last_status = last_safety = time.monotonic()
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
                if watchdog_every and now - last_watchdog >= watchdog_every:
                    notify("WATCHDOG=1")
                    last_watchdog = now
                # every few seconds, and at once when an incident opens or closes
                if now - last_status >= STATUS_EVERY or len(self.corr.open) != open_then:
                    lines, open_then = self._lines_read(), len(self.corr.open)
                    rate = (lines - lines_then) / max(now - last_status, 1e-6)
                    notify(f"STATUS={rate:.0f} lines/s, {open_then} open incident(s), {len(self.tailers)} files")
                    lines_then, last_status = lines, now
        finally:
            self._shutdown()
        return 0

    def _timeout(self, watchdog_every: float) -> float:
        waits = [SAFETY_POLL, STATUS_EVERY]
        if watchdog_every:
            waits.append(watchdog_every)
        if self.corr.open or self.corr.pending:
            waits.append(TICK)
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
        for path in sorted(self.dirty):
            t = self.tailers.get(path)
            if t is None:
                self.dirty.discard(path)
                continue
            recs, t_more = t.poll(self._selector)
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
        outputs = self._process(records)
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
        if self.unsaved_outputs and since >= SAVE_OUTPUTS_EVERY or self.positions_moved and since >= SAVE_EVERY:
            self._save()
        return more

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
            if path in self.tailers:
                self.dirty.add(path)
                continue
            if owner := next((p for p in draining if path.startswith(p)), None):
                self.dirty.add(owner)
            if os.path.isfile(path) and not os.path.islink(path) and any(s.wants(path) for s in self.specs):
                t = Tailer(path, self._file_options(), warn)
                if t.open(at_end=False):  # a file that appears later: from its beginning
                    self.tailers[path] = t
                    self.dirty.add(path)
        return False

    def _process(self, records: list[Record]) -> list[dict[str, Any]]:
        events: list[Event] = []
        self.metrics.records(records)
        for rec in records:
            if rec.host is None:
                rec.host = self.host
            if rec.cursor:  # only journal entries carry one
                self.journal_cursor = rec.cursor
                self.journal_lines += 1
                self.positions_moved = True
            self.entities.learn(rec)
            ev = classify(rec, self.cat, self.cfg.all_lines)
            if ev is not None:
                ev.vm, _ = self.entities.resolve(ev)
                events.append(ev)
        events.sort(key=lambda e: e.record.ts)
        self.metrics.classified(events)
        outputs: list[dict[str, Any]] = []
        emit_events = self.cfg.emit == "events"
        for ev in events:
            if emit_events:
                outputs.append(ev.to_dict())
                continue
            if self.max_ts is None or ev.ts > self.max_ts:
                self.max_ts = ev.ts
            self.max_mono = time.monotonic()
            outputs.extend(inc.to_dict(check_lang(self.cfg.lang)) for inc in self.corr.feed(ev))
        return outputs

    def _tick(self) -> list[dict[str, Any]]:
        """While the logs are idle, event time moves on with the wall clock."""
        if self.max_ts is None or not (self.corr.open or self.corr.pending):
            return []
        idle = time.monotonic() - self.max_mono - LAG
        if idle <= 0:
            return []
        lang = check_lang(self.cfg.lang)
        return [inc.to_dict(lang) for inc in self.corr.advance(self.max_ts + timedelta(seconds=idle))]

    # -- state ------------------------------------------------------------------------------
    def _save(self) -> None:
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
            "entities": entities_to_json(self.entities),
            "sinks": {d.name: d.pending() for d in self.deliveries if d.pending()},
        }
        try:
            write_atomic(self.state_path, data)
        except OSError as exc:
            warn(f"{self.state_path}: cannot save state: {exc.strerror or exc}")
            return
        self.last_save = time.monotonic()
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
            self.cat = cat
            self._selectors = {}
        self.cfg = cfg
        self.corr.set_gap(cfg.window)
        known = {s.text for s in self.specs}
        self.specs = cfg.specs()
        self.watcher.watch(self.specs)
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
        """Events in open windows point at the new catalogue's patterns (same id)."""
        evs = [e for inc in self.corr.open.values() for e in inc.events] + self.corr.pending
        for e in evs:
            if e.pattern is not None and e.pattern.id in cat.by_id:
                e.pattern = cat.by_id[e.pattern.id]

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
