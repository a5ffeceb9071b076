"""--vm, --category, --min-severity, --host: which events and incidents a user asked to see.

Analysis always runs on everything (a VM's failure may be caused by the host); filters only
choose what is shown."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from logsense.model import SEVERITY_RANK, Event


@dataclass
class Filters:
    vms: set[str] = field(default_factory=set)
    categories: set[str] = field(default_factory=set)
    min_severity: str | None = None
    host: str | None = None

    def _severe(self, severity: str | None) -> bool:
        return self.min_severity is None or SEVERITY_RANK.get(severity or "", -1) >= SEVERITY_RANK[self.min_severity]

    def event(self, ev: Event) -> bool:
        return ((not self.vms or ev.vm in self.vms) and (not self.categories or ev.category in self.categories)
                and self._severe(ev.severity) and (self.host is None or ev.record.host == self.host))

    def incident(self, inc: dict[str, Any]) -> bool:
        vms = {inc.get("vm"), *inc.get("affected_vms", [])}
        hosts = {inc.get("host"), *inc.get("hosts", [])}
        return ((not self.vms or bool(vms & self.vms)) and (not self.categories or inc["category"] in self.categories)
                and self._severe(inc["severity"]) and (self.host is None or self.host in hosts))
