"""The daemon's state on disk: file positions, the journal cursor, the correlator's open
windows, the VM map and undelivered sink queues, as plain JSON written atomically.

Never pickle: a tampered state file must not run code, so everything is rebuilt from plain
values, and events are re-linked to the loaded catalogue by pattern id. State written with
another catalogue is migrated (an event whose pattern is gone is classified again, or
dropped); state from another version keeps what can be trusted and drops the rest, with a
warning, never a crash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from logsense.attribution import EntityMap
from logsense.catalogue import Catalogue
from logsense.correlator import Correlator, Incident
from logsense.model import Event, Record

STATE_VERSION = 1
STATE_FILE = "state.json"
Warn = Callable[[str], None]


# -- atomic files ---------------------------------------------------------------------------
def write_atomic(path: Path, data: dict[str, Any]) -> None:
    """temp file in the same directory, fsync, rename over, fsync the directory: after a crash
    the file is the old state or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, separators=(",", ":"), default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read_state(path: Path, warn: Warn) -> dict[str, Any] | None:
    """The saved state, or None (first start, or a state file that cannot be used)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        warn(f"{path}: cannot read state ({exc.strerror or exc}); starting afresh")
        return None
    try:
        data = json.loads(text)
    except ValueError:
        warn(f"{path}: state is not valid JSON; starting afresh")
        return None
    if not isinstance(data, dict):
        warn(f"{path}: state is not a JSON object; starting afresh")
        return None
    if data.get("version") != STATE_VERSION:
        warn(f"{path}: state version {data.get('version')!r} is not {STATE_VERSION}: file positions kept, "
             "open incident windows discarded")
        return {"version": STATE_VERSION, "files": data.get("files") or {}, "journal": data.get("journal") or {}}
    return data


def catalogue_digest(cat: Catalogue) -> str:
    h = hashlib.sha256()
    for p in sorted(cat.patterns, key=lambda p: p.id):
        h.update(f"{p.id}\x1f{p.regex}\x1f{p.role}\x1f{p.scope}\x1f{p.priority}\x1e".encode())
    return h.hexdigest()[:16]


# -- values ---------------------------------------------------------------------------------
def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


RECORD_FIELDS = ("source", "message", "host", "file", "line", "cursor", "pid", "level", "vm", "parsed", "extra")


def record_to_json(r: Record) -> dict[str, Any]:
    d = {k: getattr(r, k) for k in RECORD_FIELDS}
    d["ts"] = _ts(r.ts)
    return d


def record_from_json(d: dict[str, Any]) -> Record:
    rec = Record(ts=_dt(d["ts"]), source=str(d["source"]), message=str(d.get("message", "")))
    for k in RECORD_FIELDS[2:]:
        if k in d:
            setattr(rec, k, d[k])
    rec.raw = rec.message
    rec.extra = dict(rec.extra or {})
    return rec


def event_to_json(ev: Event) -> dict[str, Any]:
    return {"record": record_to_json(ev.record), "pattern": ev.pattern_id, "fields": ev.fields, "vm": ev.vm,
            "category": ev.category, "severity": ev.severity, "role": ev.role, "shape": ev.shape}


class Relinker:
    """Events back to the loaded catalogue's patterns; counts what had to change."""

    def __init__(self, cat: Catalogue, same_catalogue: bool) -> None:
        self.cat = cat
        self.same = same_catalogue
        self.reclassified = 0
        self.dropped = 0

    def event(self, d: dict[str, Any]) -> Event | None:
        from logsense.pipeline import classify

        rec = record_from_json(d["record"])
        pid = d.get("pattern")
        pattern = self.cat.by_id.get(pid) if pid else None
        if pid and (pattern is None or not self.same):
            fresh = classify(rec, self.cat)
            if fresh is None:
                self.dropped += 1
                return None
            if fresh.pattern_id != pid:
                self.reclassified += 1
            fresh.vm = d.get("vm")
            return fresh
        return Event(rec, pattern, dict(d.get("fields") or {}), vm=d.get("vm"), category=d.get("category"),
                     severity=d.get("severity"), role=d.get("role"), shape=d.get("shape"))


def incident_to_json(inc: Incident) -> dict[str, Any]:
    return {
        "id": inc.id, "host": inc.host, "scope": inc.scope, "vm": inc.vm,
        "events": [event_to_json(e) for e in inc.events],
        "counts": [[list(k), n] for k, n in inc.counts.items()],
        "affected": sorted(inc.affected), "failures": inc.failures,
        "recovered_at": _ts(inc.recovered_at), "started_at": _ts(inc.started_at), "last_ts": _ts(inc.last_ts),
        "version": inc.version, "status": inc.status, "closed": inc.closed,
    }


def incident_from_json(d: dict[str, Any], relink: Relinker) -> Incident | None:
    events = [e for e in (relink.event(x) for x in d.get("events", [])) if e is not None]
    if not events:
        return None
    inc = Incident(id=str(d["id"]), host=d.get("host"), scope=str(d["scope"]), vm=d.get("vm"), events=events,
                   counts={tuple(k): int(n) for k, n in d.get("counts", [])}, affected=set(d.get("affected", [])),
                   failures=int(d.get("failures", 0)), recovered_at=_dt(d.get("recovered_at")),
                   started_at=_dt(d.get("started_at")), last_ts=_dt(d.get("last_ts")),
                   version=int(d.get("version", 0)), status=str(d.get("status", "open")),
                   closed=bool(d.get("closed", False)))
    return inc


def _fingerprint_to_json(fp: tuple) -> list:
    pid, shape, affected, severity, recovered, closed, failures = fp
    return [pid, shape, list(affected), severity, _ts(recovered), closed, failures]


def _fingerprint_from_json(v: list) -> tuple:
    pid, shape, affected, severity, recovered, closed, failures = v
    return (pid, shape, tuple(affected), severity, _dt(recovered), bool(closed), int(failures))


# -- the correlator -------------------------------------------------------------------------
def correlator_to_json(c: Correlator) -> dict[str, Any]:
    """Open windows, pending events, closed incidents a later line may still recover, and
    what was emitted of each (only for incidents still alive: the others are never emitted
    again)."""
    recent = list(c.recent)
    incidents: dict[str, Incident] = {}
    for inc in [*c.open.values(), *c.done, *recent]:
        incidents[inc.id] = inc
    return {
        "watermark": _ts(c.watermark),
        "incidents": [incident_to_json(i) for i in incidents.values()],
        "open": [[host, key, inc.id] for (host, key), inc in c.open.items()],
        "done": [i.id for i in c.done],
        "recent": [i.id for i in recent],
        "pending": [event_to_json(e) for e in c.pending],
        "emitted": {i: _fingerprint_to_json(c._emitted[i]) for i in incidents if i in c._emitted},
    }


def correlator_from_json(d: dict[str, Any], c: Correlator, relink: Relinker) -> None:
    """Fill a fresh Correlator with saved windows."""
    by_id: dict[str, Incident] = {}
    for x in d.get("incidents", []):
        if (inc := incident_from_json(x, relink)) is not None:
            by_id[inc.id] = inc
    c.watermark = _dt(d.get("watermark"))
    c.open = {(host, key): by_id[i] for host, key, i in d.get("open", []) if i in by_id}
    c.done = [by_id[i] for i in d.get("done", []) if i in by_id]
    c.recent = [by_id[i] for i in d.get("recent", []) if i in by_id]
    c.pending = [e for e in (relink.event(x) for x in d.get("pending", [])) if e is not None]
    c._emitted = {i: _fingerprint_from_json(v) for i, v in d.get("emitted", {}).items() if i in by_id}


# -- the VM map -----------------------------------------------------------------------------
def entities_to_json(m: EntityMap) -> dict[str, Any]:
    return {
        "uuid": m.uuid, "path": m.path, "pid": [[k, v] for k, v in m.pid.items()], "device": m.device,
        "label": m.label, "shared": sorted(m.shared),
        "reasons": [[k[0], k[1], v] for k, v in m.reasons.items()], "vms": sorted(m.vms),
    }


def entities_from_json(d: dict[str, Any]) -> EntityMap:
    return EntityMap(uuid=dict(d.get("uuid", {})), path=dict(d.get("path", {})),
                     pid={int(k): v for k, v in d.get("pid", [])}, device=dict(d.get("device", {})),
                     label=dict(d.get("label", {})), shared={(a, b) for a, b in d.get("shared", [])},
                     reasons={(a, b): v for a, b, v in d.get("reasons", [])}, vms=set(d.get("vms", [])))
