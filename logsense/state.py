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
from pathlib import Path
from typing import Any

from logsense.attribution import EntityMap
from logsense.catalogue import Catalogue
from logsense.correlator import datetime_or_none, iso_or_none
from logsense.ingest.classify import classify
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
        return {"version": STATE_VERSION, "files": data.get("files") or {}, "journal": data.get("journal") or {},
                "saved_at": data.get("saved_at")}
    return data


def catalogue_digest(cat: Catalogue) -> str:
    h = hashlib.sha256()
    for p in sorted(cat.patterns, key=lambda p: p.id):
        h.update(f"{p.id}\x1f{p.regex}\x1f{p.role}\x1f{p.scope}\x1f{p.priority}\x1e".encode())
    return h.hexdigest()[:16]


# -- values ---------------------------------------------------------------------------------
RECORD_FIELDS = ("source", "message", "host", "file", "line", "cursor", "pid", "level", "vm", "parsed", "extra")


def record_to_json(r: Record) -> dict[str, Any]:
    d = {k: getattr(r, k) for k in RECORD_FIELDS}
    d["ts"] = iso_or_none(r.ts)
    return d


def record_from_json(d: dict[str, Any]) -> Record:
    rec = Record(ts=datetime_or_none(d["ts"]), source=str(d["source"]), message=str(d.get("message", "")))
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
    """Events back to the loaded catalogue's patterns; counts what had to change. `event` is
    what `Correlator.from_state` is given to restore events with."""

    def __init__(self, cat: Catalogue, same_catalogue: bool) -> None:
        self.cat = cat
        self.same = same_catalogue
        self.reclassified = 0
        self.dropped = 0

    def event(self, d: dict[str, Any]) -> Event | None:
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
