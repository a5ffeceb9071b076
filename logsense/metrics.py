"""The daemon's Prometheus metrics: an HTTP listener (off unless `--metrics HOST:PORT`) and a
node-exporter textfile written atomically (`--metrics-textfile PATH`).

Counters are moved by one-line hooks in the daemon's loop (records read, events classified,
incidents emitted); everything that is a state — open incidents, follow and journal lag, sink
queues, catalogue size, the last save — is taken once a second by `observe` in the loop's own
thread and served from that snapshot, so a scrape never walks structures the loop is changing.
Label sets stay bounded: sources, categories, severities, statuses and the configured sinks;
never a VM, a file or an incident.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    disable_created_metrics,
    start_http_server,
    write_to_textfile,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from logsense.model import Event, Record
from logsense.pipeline import InputError

OBSERVE_EVERY = 1.0  # seconds between snapshots (and textfile writes)


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `[V6]:PORT` or `:PORT` (all addresses) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise InputError(f"metrics: {text!r} is not HOST:PORT (e.g. 127.0.0.1:9874)")
    return host.strip("[]") or "0.0.0.0", int(port)


class Snapshot:
    """The collector serving what `observe` last took."""

    def __init__(self) -> None:
        self.families: list = []

    def collect(self) -> Iterable:
        return list(self.families)


class Metrics:
    def __init__(self, warn: Callable[[str], None]) -> None:
        disable_created_metrics()  # no *_created series: they double the textfile and no query needs them
        self.warn = warn
        self.registry = CollectorRegistry()
        reg = self.registry
        self.lines = Counter("logsense_lines_read_total", "Log lines read, per source format.", ["source"],
                             registry=reg)
        self.bytes = Counter("logsense_read_bytes_total", "Bytes of log read, per source format.", ["source"],
                             registry=reg)
        self.parse_failures = Counter("logsense_parse_failures_total",
                                      "Candidate lines no parser understood (kept as raw records).", ["source"],
                                      registry=reg)
        self.events = Counter("logsense_events_total", "Lines the catalogue recognised, per category and severity.",
                              ["category", "severity"], registry=reg)
        self.unrecognised = Counter("logsense_unrecognised_errors_total",
                                    "Error lines no catalogue pattern matched (candidates for new patterns).",
                                    registry=reg)
        self.emitted = Counter("logsense_incidents_emitted_total",
                               "Incident versions handed to the sinks, per category, severity and status.",
                               ["category", "severity", "status"], registry=reg)
        self.snapshot = Snapshot()
        reg.register(self.snapshot)
        self.seen: dict[str, tuple[int, int]] = {}  # file -> (lines_read, bytes_read) when last counted
        self.caught_up: dict[str, float] = {}  # file -> its mtime when the reader last reached its end
        self.journal_ts = None  # stamp of the newest journal entry processed
        self.last_observed = 0.0
        self.textfile: str | None = None
        self.server = None
        self.textfile_failed = False

    # -- set-up -------------------------------------------------------------------------------
    def serve(self, listen: str | None, textfile: str | None) -> str | None:
        """Start the listener (and remember the textfile); the URL it serves, if any."""
        self.textfile = textfile
        if not listen:
            return None
        host, port = parse_listen(listen)
        try:
            self.server, _ = start_http_server(port, host, self.registry)
        except OSError as exc:
            raise InputError(f"metrics: cannot listen on {listen}: {exc.strerror or exc}") from exc
        host, port = self.server.server_address[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    # -- hooks: counters ----------------------------------------------------------------------
    def file_read(self, tailer: Any) -> None:
        """After a file was polled: lines and bytes it read since the last poll."""
        lines, read = tailer.lines_read, tailer.bytes_read
        before_lines, before_read = self.seen.get(tailer.path, (0, 0))
        self.seen[tailer.path] = (lines, read)
        source = tailer.fmt or "unknown"
        if lines > before_lines:
            self.lines.labels(source).inc(lines - before_lines)
        if read > before_read:
            self.bytes.labels(source).inc(read - before_read)

    def records(self, records: list[Record]) -> None:
        """Records before classification: journal entries (whose lines no tailer counts) and
        parse failures."""
        for rec in records:
            if rec.cursor:
                self.lines.labels("journal").inc()
                self.bytes.labels("journal").inc(len(rec.raw.encode()) if rec.raw else len(rec.message.encode()))
                if self.journal_ts is None or rec.ts > self.journal_ts:
                    self.journal_ts = rec.ts
            if not rec.parsed:
                self.parse_failures.labels(rec.source).inc()

    def classified(self, events: list[Event]) -> None:
        for ev in events:
            if ev.pattern is not None:
                self.events.labels(ev.category or "none", ev.severity or "none").inc()
            elif ev.shape is not None:
                self.unrecognised.inc()

    def outputs(self, outputs: list[dict[str, Any]]) -> None:
        for o in outputs:
            if "status" in o:
                self.emitted.labels(o.get("category") or "none", o.get("severity") or "none", o["status"]).inc()

    # -- states, once a second ----------------------------------------------------------------
    def observe(self, daemon: Any, force: bool = False) -> None:
        """Snapshot the daemon's states and write the textfile (at most once a second)."""
        now = time.monotonic()
        if not force and now - self.last_observed < OBSERVE_EVERY:
            return
        self.last_observed = now
        self.snapshot.families = self._take(daemon)
        if self.textfile:
            self._write_textfile()

    def _write_textfile(self) -> None:
        try:
            write_to_textfile(self.textfile, self.registry)  # a temporary file renamed over it
        except OSError as exc:
            if not self.textfile_failed:
                self.warn(f"{self.textfile}: cannot write metrics: {exc.strerror or exc}")
            self.textfile_failed = True
        else:
            self.textfile_failed = False

    def _take(self, daemon: Any) -> list:
        wall = time.time()
        fams = []
        open_ = GaugeMetricFamily("logsense_incidents_open", "Incidents open now (emitted, not yet resolved).",
                                  labels=["category", "severity"])
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for inc in list(daemon.corr.open.values()):
            if inc.version > 0 and not inc.closed:
                counts[(inc.root.category or "none", inc.severity())] += 1
        for labels, n in sorted(counts.items()):
            open_.add_metric(list(labels), n)
        fams.append(open_)

        lag = GaugeMetricFamily("logsense_follow_lag_seconds", "How far the reader is behind the writer, per "
                                "source format: the newest file's mtime minus its mtime when the reader last reached "
                                "its end (0 when caught up); the worst file of each format.", labels=["source"])
        worst: dict[str, float] = {}
        for path, t in list(daemon.tailers.items()):
            behind = self._file_lag(path, t, wall)
            if behind is not None:
                source = t.fmt or "unknown"
                worst[source] = max(worst.get(source, 0.0), behind)
        for source, behind in sorted(worst.items()):
            lag.add_metric([source], behind)
        fams.append(lag)
        fams.append(GaugeMetricFamily("logsense_files_followed", "Files followed now.", value=len(daemon.tailers)))

        if daemon.journal is not None:
            fams.append(GaugeMetricFamily("logsense_journal_lag_seconds", "Stamp of the newest journal entry read "
                                          "minus that of the newest processed.", value=self._journal_lag(daemon)))

        depth = GaugeMetricFamily("logsense_sink_queue_items", "Items waiting for a sink.", labels=["sink"])
        delivered = CounterMetricFamily("logsense_sink_delivered", "Items a sink accepted.", labels=["sink"])
        failures = CounterMetricFamily("logsense_sink_failures", "Failed delivery attempts (each retry counts).",
                                       labels=["sink"])
        dropped = CounterMetricFamily("logsense_sink_dropped", "Items dropped: rejected by the receiver or "
                                      "pushed out of a full queue.", labels=["sink"])
        for d in list(daemon.deliveries):
            label = [d.sink.label]
            depth.add_metric(label, len(d.queue))
            delivered.add_metric(label, d.delivered)
            failures.add_metric(label, d.failures)
            dropped.add_metric(label, d.dropped + d.rejected)
        fams += [depth, delivered, failures, dropped]

        fams.append(GaugeMetricFamily("logsense_catalogue_patterns", "Patterns in the catalogue in use.",
                                      value=len(daemon.cat.patterns)))
        if daemon.last_save:
            saved_at = wall - (time.monotonic() - daemon.last_save)
            fams.append(GaugeMetricFamily("logsense_state_last_save_timestamp_seconds",
                                          "When the state (positions, open incidents, queues) was last saved.",
                                          value=saved_at))
        return fams

    def _file_lag(self, path: str, tailer: Any, wall: float) -> float | None:
        fd = getattr(tailer, "fd", None)
        if fd is None:
            return None
        try:
            st = os.fstat(fd)
        except OSError:
            return None
        if tailer.offset >= st.st_size:
            self.caught_up[path] = st.st_mtime
            return 0.0
        since = self.caught_up.setdefault(path, min(st.st_mtime, wall))
        return max(0.0, st.st_mtime - since)

    def _journal_lag(self, daemon: Any) -> float:
        q = daemon.journal_q
        with q.mutex:
            newest = q.queue[-1].ts if q.queue else None
        if newest is None or self.journal_ts is None:
            return 0.0
        return max(0.0, (newest - self.journal_ts).total_seconds())

