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
import math
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
from logsense.follow import FP_BYTES
from logsense.ingest.classify import classify
from logsense.model import ROLE_RANK, SEVERITY_RANK, Event, Record

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
            state, problems, dropped = check_state(data) if not why else (None, [why], set())
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
    """(the parsed file, why it cannot be (empty: it can), its mtime or None when there is no
    such file)."""
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


# -- the state's shape ----------------------------------------------------------------------
# A check takes a value and says what is wrong with it (None: nothing). Small combinators make
# the shape of the state declarative; `check_state` drops a bad part and keeps the rest.
Check = Callable[[Any], "str | None"]
BIG = 1 << 63  # offsets, inodes and counts past this are not a file's (os.pread would overflow)


def _kind(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def text(v: Any) -> str | None:
    return None if isinstance(v, str) else f"{_kind(v)}, not a string"


def flag(v: Any) -> str | None:
    return None if isinstance(v, bool) else f"{_kind(v)}, not true/false"


def count(v: Any) -> str | None:
    if isinstance(v, int) and not isinstance(v, bool):
        return None if 0 <= v < BIG else "a number out of range"
    return f"{_kind(v)}, not a whole number"


def is_list(v: Any) -> str | None:
    return None if isinstance(v, list) else f"{_kind(v)}, not a list"


def is_object(v: Any) -> str | None:
    return None if isinstance(v, dict) else f"{_kind(v)}, not an object"


def number(v: Any) -> str | None:
    if isinstance(v, int | float) and not isinstance(v, bool):
        return None if math.isfinite(v) else f"{v}, not a finite number"
    return f"{_kind(v)}, not a number"


def moment(v: Any) -> str | None:
    """An ISO time with its zone, far enough from datetime's limits to add a window to."""
    if not isinstance(v, str):
        return f"{_kind(v)}, not a time"
    try:
        t = datetime.fromisoformat(v)
    except ValueError:
        return f"{v[:40]!r}, not an ISO time"
    if t.tzinfo is None:
        return f"{v[:40]!r}, a time without its zone"
    return None if 2 <= t.year <= 9998 else f"{v[:40]!r}, a time out of range"


def one_of(*values: str) -> Check:
    return lambda v: None if v in values else f"{str(v)[:40]!r}, not one of {', '.join(values)}"


def optional(check: Check) -> Check:
    return lambda v: None if v is None else check(v)


def either(*checks: Check) -> Check:
    def check(v: Any) -> str | None:
        problems = [c(v) for c in checks]
        return None if None in problems else problems[0]
    return check


def items(check: Check) -> Check:
    def each(v: Any) -> str | None:
        if p := is_list(v):
            return p
        return next((f"[{n}]: {p}" for n, x in enumerate(v) if (p := check(x))), None)
    return each


def row(*checks: Check) -> Check:
    """A fixed-length list, each place of its own type."""
    def check(v: Any) -> str | None:
        if not isinstance(v, list) or len(v) != len(checks):
            return f"{_kind(v)}, not a list of {len(checks)}"
        return next((f"[{n}]: {p}" for n, (c, x) in enumerate(zip(checks, v, strict=True)) if (p := c(x))), None)
    return check


def mapping(check: Check) -> Check:
    def each(v: Any) -> str | None:
        if p := is_object(v):
            return p
        return next((f"[{k[:60]!r}]: {p}" for k, x in v.items() if (p := check(x))), None)
    return each


def obj(required: dict[str, Check], optional_keys: dict[str, Check] | None = None) -> Check:
    """An object with these keys (others are ignored: nothing reads them)."""
    def check(v: Any) -> str | None:
        if p := is_object(v):
            return p
        for k, c in required.items():
            if k not in v:
                return f"{k}: missing"
            if p := c(v[k]):
                return f"{k}: {p}"
        for k, c in (optional_keys or {}).items():
            if k in v and (p := c(v[k])):
                return f"{k}: {p}"
        return None
    return check


NAME = optional(text)
EXTRA = mapping(either(optional(text), flag, number, items(text)))
EXTRA_KNOWN = obj({}, {"seq": count, "disks": items(text), "uptime": number, "uuid": text, "pasted": flag,
                       "command_line": flag, "program": text, "LIBVIRT_CODE": text})
RECORD = obj({"ts": moment, "source": text},
             {"message": text, "host": NAME, "file": NAME, "line": optional(count), "cursor": NAME,
              "pid": optional(count), "level": NAME, "vm": NAME, "parsed": flag,
              "extra": lambda v: EXTRA(v) or EXTRA_KNOWN(v)})
EVENT = obj({"record": RECORD},
            {"pattern": NAME, "fields": mapping(optional(text)), "vm": NAME, "category": NAME,
             "severity": optional(one_of(*SEVERITY_RANK)), "role": optional(one_of(*ROLE_RANK)), "shape": NAME})
INCIDENT = obj({"id": text, "scope": text, "events": items(EVENT)},
               {"host": NAME, "vm": NAME, "counts": items(row(row(NAME, text, NAME), count)),
                "affected": items(text), "failures": count, "recovered_at": optional(moment),
                "started_at": optional(moment), "first_ts": optional(moment), "last_ts": optional(moment),
                "version": count, "status": text, "closed": flag})
EMITTED = row(NAME, NAME, either(count, items(text)), NAME, optional(moment), flag, count)
IDENTITY = obj({"dev": count, "ino": count, "fp": text,
                "fp_len": lambda v: count(v) or (None if v <= FP_BYTES else f"{v}, more than {FP_BYTES}")})
CONTEXT = obj({}, {"ts": moment, "pid": optional(count), "level": NAME})
POSITION = obj({"identity": IDENTITY, "offset": count, "line": count}, {"context": CONTEXT})
FILE_ENTRY = obj({}, {"identity": IDENTITY, "offset": count, "line": count, "context": CONTEXT,
                      "rotated": items(POSITION)})
OUTPUT = either(obj({"id": text, "version": count}), obj({"ts": moment, "message": text}))  # incident or event
# the parts of the state, each dropped on its own (lists and maps: item by item)
TOP = {"catalogue": text, "saved_at": moment, "host": NAME, "journal": obj({}, {"cursor": text})}
CORRELATOR = {"watermark": optional(moment)}
CORRELATOR_LISTS = {"incidents": INCIDENT, "open": row(NAME, text, text), "done": text, "recent": text,
                    "pending": EVENT}
ENTITY_MAPS = ("uuid", "path", "device", "label")
ENTITY_LISTS = {"pid": row(count, text), "shared": row(text, text), "reasons": row(text, text, text),
                "vms": text}


class _Parts:
    """Gathers what is kept and what was wrong, part by part."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def keep(self, where: str, value: Any, check: Check) -> bool:
        if (p := check(value)) is None:
            return True
        self.problems.append(f"{where}: {p}")
        return False

    def fields(self, where: str, src: dict[str, Any], checks: dict[str, Check]) -> dict[str, Any]:
        return {k: src[k] for k, c in checks.items() if k in src and self.keep(f"{where}{k}", src[k], c)}

    def listed(self, where: str, v: Any, check: Check) -> list[Any]:
        if v is None or not self.keep(where, v, is_list):
            return []
        return [x for n, x in enumerate(v) if self.keep(f"{where}[{n}]", x, check)]

    def mapped(self, where: str, v: Any, check: Check) -> dict[str, Any]:
        if v is None or not self.keep(where, v, is_object):
            return {}
        return {k: x for k, x in v.items() if self.keep(f"{where}[{k[:60]!r}]", x, check)}

    def section(self, where: str, v: Any) -> dict[str, Any] | None:
        if v is None or not self.keep(where, v, is_object):
            return None
        return v


def check_state(data: Any) -> tuple[dict[str, Any] | None, list[str], set[str]]:
    """(what can be used, what was wrong, the paths whose saved position was dropped). Every
    field is type-checked; a bad part is dropped (a bad file entry drops that file's position
    only, a bad event that event) and the rest kept."""
    if not isinstance(data, dict):
        return None, ["state is not a JSON object"], set()
    parts = _Parts()
    version = data.get("version")
    if version != STATE_VERSION or isinstance(version, bool):
        parts.problems.append(f"state version {version!r:.20} is not {STATE_VERSION}: file positions kept, "
                              "open incident windows discarded")
        data = {k: data[k] for k in ("files", "journal", "saved_at") if k in data}
    out: dict[str, Any] = {"version": STATE_VERSION, **parts.fields("", data, TOP)}
    files = out["files"] = parts.mapped("files", data.get("files"), FILE_ENTRY)
    dropped = set(data["files"]) - set(files) if isinstance(data.get("files"), dict) else set()
    if (corr := parts.section("correlator", data.get("correlator"))) is not None:
        lists = {k: parts.listed(f"correlator.{k}", corr.get(k), c) for k, c in CORRELATOR_LISTS.items()}
        out["correlator"] = {**parts.fields("correlator.", corr, CORRELATOR), **lists,
                             "emitted": parts.mapped("correlator.emitted", corr.get("emitted"), EMITTED)}
    if (ent := parts.section("entities", data.get("entities"))) is not None:
        out["entities"] = {**{k: parts.mapped(f"entities.{k}", ent.get(k), text) for k in ENTITY_MAPS},
                           **{k: parts.listed(f"entities.{k}", ent.get(k), c) for k, c in ENTITY_LISTS.items()}}
    if "settling" in data:
        out["settling"] = parts.listed("settling", data["settling"], EVENT)
    if "sinks" in data:
        out["sinks"] = parts.mapped("sinks", data["sinks"], items(OUTPUT))
    return out, parts.problems, dropped


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
