"""The plain data that flows between the pipeline's stages.

Sources yield lines, parsers turn them into `Record`s, the catalogue turns records into
`Event`s, and the correlator groups events into `Incident`s. Nothing here knows where a line
came from or where an incident goes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SOURCES = ("libvirtd", "qemu", "syslog", "journal")
CATEGORIES = (
    "memory", "cpu", "permission", "disk_image", "storage", "network",
    "config", "virt_layer", "performance", "host", "guest",
)
SEVERITIES = ("critical", "major", "minor")
ROLES = ("cause", "symptom", "context")
SEVERITY_RANK = {"critical": 3, "major": 2, "minor": 1}
ROLE_RANK = {"cause": 3, "symptom": 2, "context": 1}

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class Record:
    """One parsed log line (or journal entry, or joined multi-line record)."""

    ts: datetime
    source: str
    message: str
    raw: str = ""
    host: str | None = None
    file: str | None = None
    line: int | None = None
    cursor: str | None = None
    pid: int | None = None
    level: str | None = None
    vm: str | None = None
    parsed: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    untimed: bool = False  # pasted text without a time of its own: `ts` is EPOCH, not a real time


@dataclass(slots=True)
class Event:
    """A record with the catalogue's verdict on it (pattern may be None: unrecognised)."""

    record: Record
    pattern: Any = None  # logsense.catalogue.Pattern
    fields: dict[str, str] = field(default_factory=dict)
    vm: str | None = None
    category: str | None = None
    severity: str | None = None
    role: str | None = None
    shape: str | None = None  # message with variable parts masked, for unrecognised errors

    @property
    def ts(self) -> datetime:
        return self.record.ts

    @property
    def pattern_id(self) -> str | None:
        return self.pattern.id if self.pattern is not None else None

    def to_dict(self) -> dict[str, Any]:
        """The CONTRACT.md event object."""
        r = self.record
        return {
            "ts": r.ts.isoformat(timespec="microseconds"),
            "host": r.host,
            "source": r.source,
            "file": r.file,
            "line": r.line,
            "cursor": r.cursor,
            "vm": self.vm,
            "pattern": self.pattern_id,
            "category": self.category,
            "severity": self.severity,
            "role": self.role,
            "message": r.message,
            "fields": dict(self.fields),
            **({"time_known": False} if r.untimed else {}),
        }
