"""The incident record of the troubleshooting guide (§9.4), one Markdown document per incident:
time of failure, symptoms per VM, scope of impact, steps (a checklist to fill), recovery
time, root cause with its evidence, prevention.

Every heading and joining word comes from `[record.<lang>]` and the prevention advice from
`[prevention.<category>]` in `patterns/record.toml` (a site's file of that name replaces it),
so a language is added as data. Everything taken from the logs is escaped or fenced.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from logsense.catalogue import CatalogueError, pattern_files
from logsense.i18n import t as tr
from logsense.i18n import word
from logsense.model import CATEGORIES
from logsense.report_model import untimed
from logsense.text import safe

RECORD_FILE = "record.toml"
MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")  # what can start markup mid-line
EVIDENCE_MAX = 30


@dataclass
class RecordData:
    """Headings per language, and prevention advice per category and language."""

    labels: dict[str, dict[str, Any]]
    prevention: dict[str, dict[str, list[str]]]


def record_file(extra_dirs: Iterable[str | os.PathLike] = ()):
    return next((p for p in pattern_files(extra_dirs) if p.name == RECORD_FILE), None)


def load_record_data(extra_dirs: Iterable[str | os.PathLike] = ()) -> RecordData:
    path = record_file(extra_dirs)
    if path is None:
        raise CatalogueError([f"{RECORD_FILE}: missing from the catalogue"])
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CatalogueError([f"{path}: cannot read: {exc}"]) from exc
    return RecordData(labels=data.get("record", {}), prevention=data.get("prevention", {}))


def record_problems(extra_dirs: Iterable[str | os.PathLike] = ()) -> list[str]:
    """For `catalogue check`: every language has every heading English has, and every category
    has advice in every language."""
    try:
        data = load_record_data(extra_dirs)
    except CatalogueError as exc:
        return list(exc.problems)
    where = RECORD_FILE
    if "en" not in data.labels:
        return [f"{where}: no [record.en] headings"]
    problems = []
    wanted = _keys(data.labels["en"])
    for lang, labels in data.labels.items():
        if missing := wanted - _keys(labels):
            problems.append(f"{where}: [record.{lang}] lacks {', '.join(sorted(missing))}")
    for cat in CATEGORIES:
        advice = data.prevention.get(cat, {})
        for lang in data.labels:
            items = advice.get(lang)
            if not items or not isinstance(items, list) or not all(isinstance(s, str) and s for s in items):
                problems.append(f"{where}: [prevention.{cat}] has no {lang} advice (a list of lines)")
    for cat in set(data.prevention) - set(CATEGORIES):
        problems.append(f"{where}: [prevention.{cat}]: not a category ({', '.join(CATEGORIES)})")
    return problems


def _keys(table: dict[str, Any], prefix: str = "") -> set[str]:
    out = set()
    for key, value in table.items():
        out |= _keys(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key}
    return out


# -- escaping: log text is untrusted -----------------------------------------------------------
def md(text: Any) -> str:
    """Plain text in Markdown: one line, control characters shown, Markdown's marks escaped."""
    one_line = safe(str(text).replace("\r", " ").replace("\n", " "))
    return MD_SPECIAL.sub(r"\\\1", one_line)


def code(text: Any) -> str:
    """An inline code span around any text (a delimiter longer than its longest backtick run)."""
    s = safe(str(text).replace("\r", " ").replace("\n", " "))
    ticks = "`" * (max((len(r) for r in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or not s.strip() else ""
    return f"{ticks}{pad}{s}{pad}{ticks}"


def fenced(lines: list[str], info: str = "text") -> str:
    body = [safe(line.replace("\r", " ").replace("\n", " ")) for line in lines]
    fence = "`" * max(3, max((len(r) + 1 for line in body for r in re.findall(r"`{3,}", line)), default=3))
    return f"{fence}{info}\n" + "".join(f"{line}\n" for line in body) + f"{fence}\n"


# -- the record --------------------------------------------------------------------------------
def _when(iso: str | None) -> str:
    if not iso:
        return "-"
    if untimed(iso):
        return "time unknown"
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _duration(start: str, end: str, lang: str = "en") -> str:
    return _seconds((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), lang)


def _seconds(seconds: float, lang: str = "en") -> str:
    hours, rest = divmod(max(0, int(seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return tr("dur.record_h", lang, h=hours, m=f"{minutes:02d}", s=f"{secs:02d}")
    return tr("dur.record_m", lang, m=minutes, s=f"{secs:02d}")


def _where(ev: dict[str, Any], fleet: bool = False) -> str:
    """file:line of an evidence line; in a fleet incident, on which host too."""
    place = f"{os.path.basename(ev['file'])}:{ev.get('line')}" if ev.get("file") else "journal"
    return f"{ev.get('host') or '?'} {place}" if fleet else place


def render(inc: dict[str, Any], data: RecordData, lang: str = "en") -> str:
    """One incident (the CONTRACT.md object) as its record."""
    t = {**data.labels["en"], **data.labels.get(lang, {})}
    fleet = inc.get("scope") == "fleet"  # evidence from several hosts: each line says which
    out = [f"# {md(t['document'].format(title=inc['title']))}\n\n",
           f"| {t['incident']} | {code(inc['id'])} |\n|---|---|\n",
           f"| {t['host']} | {md(inc.get('host') or ', '.join(inc.get('hosts') or []) or '-')} |\n",
           f"| {t['severity']} | {md(word('severity', inc['severity'], lang))} |\n",
           f"| {t['category']} | {code(inc['category'])} |\n"]

    out.append(f"\n## {t['time_of_failure']}\n\n")
    out.append(t["first_sign"].format(first=_when(inc["first_seen"]), last=_when(inc["last_seen"])) + "\n")

    out.append(f"\n## {t['symptoms']}\n\n{t['symptoms_intro']}\n")
    by_vm: dict[str | None, list[dict[str, Any]]] = {}
    for ev in inc["evidence"]:
        by_vm.setdefault(ev.get("vm"), []).append(ev)
    for vm in sorted(by_vm, key=lambda v: (v is None, v or "")):
        out.append(f"\n### {md(vm) if vm else t['host_wide']}\n\n")
        for ev in by_vm[vm][:EVIDENCE_MAX]:
            count = ev.get("count", 1)
            times = f" ({t['times'].format(n=count)})" if count > 1 else ""
            out.append(f"- {_when(ev['ts'])} {code(_where(ev, fleet))}: {md(ev['message'][:300])}{times}\n")

    out.append(f"\n## {t['scope']}\n\n")
    scope = {"vm": t["scope_vm"], "host": t["scope_whole_host"], "fleet": t["scope_fleet"]}.get(inc["scope"], "")
    hosts = inc.get("hosts") or [inc.get("host") or "-"]
    out.append(f"- {t['scope_host']}: {md(', '.join(hosts))} ({scope})\n")
    vms = ", ".join(md(v) for v in inc["affected_vms"]) or t["scope_none"]
    out.append(f"- {t['scope_vms']}: {vms}\n")
    sources = sorted({ev["source"] for ev in inc["evidence"]})
    services = ", ".join(t["source"].get(s, md(s)) for s in sources)
    out.append(f"- {t['scope_services']}: {services}\n")

    out.append(f"\n## {t['steps']}\n\n{t['steps_intro']}\n")
    if inc["diagnostics"]:
        out.append(f"\n{t['diagnostics']}:\n\n" + "".join(f"- [ ] {code(s)}\n" for s in inc["diagnostics"]))
    if inc["remediation"]:
        out.append(f"\n{t['remediation']}:\n\n" + "".join(f"- [ ] {md(s)}\n" for s in inc["remediation"]))
    out.append(f"\n{t['done_by']}\n")

    out.append(f"\n## {t['recovery']}\n\n")
    if inc.get("recovered_at"):
        out.append(t["recovered"].format(at=_when(inc["recovered_at"]),
                                         duration=_duration(inc["first_seen"], inc["recovered_at"], lang)) + "\n")
    else:
        out.append(t["not_recovered"] + "\n")
    for d in inc.get("downtime") or []:  # each VM's downtime, from its lifecycle (logsense/lifecycle.py)
        key = "vm_down" if d["back_at"] else "vm_still_down"
        out.append("\n" + t[key].format(vm=md(d["vm"]), down=_when(d["down_at"]), back=_when(d["back_at"]),
                                        duration=_seconds(d["seconds"], lang)) + "\n")

    out.append(f"\n## {t['root_cause']}\n\n{md(inc['explanation'])}\n\n")
    if inc.get("root_cause"):
        out.append(t["root_pattern"].format(pattern=code(inc["root_cause"]), category=code(inc["category"])) + "\n\n")
    out.append(f"{t['evidence']}\n\n")
    out.append(fenced([f"{_when(ev['ts'])}  {_where(ev, fleet)}  {ev['message'][:300]}" for ev in inc["evidence"]
                       [:EVIDENCE_MAX]]))

    out.append(f"\n## {t['prevention']}\n\n")
    cats = [inc["category"]] + sorted({ev["category"] for ev in inc["evidence"] if ev.get("category")}
                                      - {inc["category"]})
    for cat in cats:
        advice = data.prevention.get(cat, {})
        items = advice.get(lang) or advice.get("en")
        out.append(t["prevention_intro"].format(categories=code(cat)) + "\n\n")
        out.append("".join(f"- {md(s)}\n" for s in items) if items else f"- {t['no_prevention']}\n")
        out.append("\n")
    return "".join(out).rstrip("\n") + "\n"


def write_records(out: TextIO, incidents: list[dict[str, Any]], extra_dirs: Iterable[str] = (),
                  lang: str = "en") -> None:
    """Every incident's record, separated by a rule."""
    data = load_record_data(extra_dirs)
    for n, inc in enumerate(incidents):
        if n:
            out.write("\n---\n\n")
        out.write(render(inc, data, lang))
