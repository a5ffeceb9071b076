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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from logsense.attribution import EntityMap
from logsense.catalogue import Catalogue
from logsense.correlator import datetime_or_none, iso_or_none
from logsense.ingest.classify import classify
from logsense.model import Event, Record

STATE_VERSION = 1
STATE_FILE = "state.json"
MAX_STATE_BYTES = 1 << 30  # a state file larger than this is not read (a full disk's junk, not a state)
Warn = Callable[[str], None]


# -- atomic files ---------------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def write_atomic(path: Path, data: dict[str, Any], keep: Path | None = None) -> None:
    """temp file in the same directory, fsync, rename over, fsync the directory: after a crash
    the file is the old state or the new one, never a mix. With `keep`, the file at `path`
    becomes `keep` first (a hard link renamed over `keep`), so `path` holds a whole state at
    every moment and `keep` the one before it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, separators=(",", ":"), default=str)
            f.flush()
            os.fsync(f.fileno())
        if keep is not None:
            _keep_previous(path, keep)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _keep_previous(path: Path, keep: Path) -> None:
    """`path`'s file also under the name `keep`, atomically. A crash before the rename leaves a
    stray link (replaced next time); where hard links are refused, the file is renamed: a crash
    before the new state lands then leaves only `keep`, which loading falls back to."""
    link = keep.with_name(f".{keep.name}.link")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(link)
    try:
        os.link(path, link)
    except FileNotFoundError:
        return
    except OSError:
        os.replace(path, keep)
        return
    os.replace(link, keep)


# -- the state file and the one before it -------------------------------------------------
@dataclass
class Loaded:
    """What loading found: the state to resume from (None: none usable), and, when none is,
    whether a daemon ran here before (a state file exists) and since when (its mtime)."""

    state: dict[str, Any] | None = None
    ran_before: bool = False
    saved_at: datetime | None = None  # mtime of the newest state file found, usable or not
    why: str = ""  # why no state is usable
    dropped_files: set[str] = field(default_factory=set)  # paths whose saved position was unusable


class StateFile:
    """`state.json` and the state saved before it, `state.json.bak`. Every save keeps the last
    good state as the backup first; loading takes the newest one that can be used and says in
    one line which and why."""

    def __init__(self, path: Path, warn: Warn) -> None:
        self.path = path
        self.backup = path.with_name(path.name + ".bak")
        self.warn = warn
        self.good = False  # `path` holds a state this process loaded whole or saved

    def save(self, data: dict[str, Any]) -> None:
        """Raises OSError when the state cannot be written."""
        write_atomic(self.path, data, keep=self.backup if self.good else None)
        self.good = True

    def load(self) -> Loaded:
        found = [(p, *_read_json(p)) for p in (self.path, self.backup)]
        mtimes = [m for _, _, _, m in found if m is not None]
        out = Loaded(ran_before=bool(mtimes) or _tmp_files_left(self.path),
                     saved_at=datetime.fromtimestamp(max(mtimes)).astimezone() if mtimes else None)
        checked = []
        for p, data, why, _ in found:
            state, problems, dropped = check_state(data) if data is not None else (None, [why], set())
            checked.append((p, state, problems, dropped))
        whole = [c for c in checked if c[1] is not None and not c[2]]
        usable = whole or [c for c in checked if c[1] is not None]
        if not usable:
            out.why = "; ".join(f"{p.name}: {problems[0]}" for (p, _, problems, _), (_, _, _, mtime)
                                in zip(checked, found, strict=True) if mtime is not None)
            return out
        p, out.state, problems, out.dropped_files = usable[0]
        said = []
        if p == self.backup:
            said.append(f"{checked[0][2][0]}; using {self.backup.name}, the state saved before it")
        if problems:
            said.append(f"{_said(problems)}; the rest is used")
        if said:
            self.warn(f"{self.path}: {'; '.join(said)}")
        self.good = p == self.path and not problems
        return out


def _said(problems: list[str]) -> str:
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} parts unusable, dropped (first: {problems[0]})"


def _tmp_files_left(path: Path) -> bool:
    """A save interrupted before its rename leaves its temp file: a daemon ran here."""
    return any(path.parent.glob(f".{path.name}.*.tmp"))


def _read_json(path: Path) -> tuple[Any, str, float | None]:
    """(the parsed file or None, why not, its mtime or None when there is no such file)."""
    try:
        with open(path, "rb") as f:
            mtime = os.fstat(f.fileno()).st_mtime
            raw = f.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return None, "missing", None
    except OSError as exc:
        try:
            mtime = path.stat().st_mtime
        except OSError:
            mtime = time.time()
        return None, f"cannot read state ({exc.strerror or exc})", mtime
    if not raw.strip():
        return None, "state is empty", mtime
    if len(raw) > MAX_STATE_BYTES:
        return None, f"state is larger than {MAX_STATE_BYTES >> 20} MiB", mtime
    try:
        return json.loads(raw.decode("utf-8")), "", mtime
    except (ValueError, RecursionError):
        return None, "state is not valid JSON (truncated?)", mtime


def check_state(data: Any) -> tuple[dict[str, Any] | None, list[str], set[str]]:
    """(what can be used, what was wrong, the paths whose position was dropped)."""
    if not isinstance(data, dict):
        return None, ["state is not a JSON object"], set()
    if data.get("version") != STATE_VERSION:
        return ({"version": STATE_VERSION, "files": data.get("files") or {}, "journal": data.get("journal") or {},
                 "saved_at": data.get("saved_at")},
                [f"state version {data.get('version')!r} is not {STATE_VERSION}: file positions kept, "
                 "open incident windows discarded"], set())
    return data, [], set()


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
