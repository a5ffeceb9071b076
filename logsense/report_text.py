"""The text report: summary first, then one block per group of identical incidents.

Laid out once as rows, then drawn two ways: plain lines wrapped to the width (files, pipes,
`less`: fast, no escape codes) or rich panels with colour when drawing to a terminal. Rows are
wrapped here, at spaces, so 80 columns stay readable: prose never breaks inside a word unless
the word is longer than a line, and a command breaks only between shell words, with ` \\`, so
it still pastes and runs.
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, TextIO

from logsense.catalogue import quote_spans
from logsense.report_model import (
    Group,
    Summary,
    format_span,
    format_ts,
    group_incidents,
    parse_ts,
    split_evidence,
    summarise,
    where,
)
from logsense.text import one_line, plural

SEVERITY_STYLE = {"critical": "bold red", "major": "yellow", "minor": "cyan"}
LABEL = 10  # width of the label column ("When", "Why", ...)
MAX_EVIDENCE, MAX_CONTEXT, MAX_OTHERS, MAX_WARNINGS = 12, 6, 10, 10
MESSAGE_CHARS = 300
MIN_WIDTH, MAX_WIDTH = 40, 160


@dataclass
class Row:
    """One logical line of the report, before wrapping. `text` is already escaped."""

    text: str
    indent: int = 0
    hang: int | None = None  # indent of continuation lines (default: under the text)
    label: str = ""
    style: str = ""  # rich style of the text (plain output ignores it)
    command: bool = False


def clip(text: Any, limit: int = MESSAGE_CHARS) -> str:
    text = one_line(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def command_words(command: str) -> list[str]:
    """The command cut at the spaces outside quotes (where a ` \\` line break keeps its meaning)."""
    spans = quote_spans(command)
    words, start = [], 0
    for i, c in enumerate(command):
        if c == " " and not any(a < i <= b for a, b, _ in spans):
            if i > start:
                words.append(command[start:i])
            start = i + 1
    if start < len(command):
        words.append(command[start:])
    return words


def wrap_row(row: Row, width: int) -> list[tuple[str, str]]:
    """(text, style) lines of one row; the label is part of the first line."""
    lead = " " * row.indent + (f"{row.label:<{LABEL}}" if row.label else "")
    hang = " " * (row.hang if row.hang is not None else len(lead))
    if row.command and len(lead) + len(row.text) > width:
        lines, cur = [], lead
        for word in command_words(row.text):
            if cur.strip() and len(cur) + 1 + len(word) + 2 > width:
                lines.append(cur + " \\")
                cur = hang + word
            else:
                cur = cur + (" " if cur.strip() else "") + word
        lines.append(cur)
        return [(line, row.style) for line in lines]
    if row.command or not row.text:  # a command that fits stays exactly as written
        return [((lead + row.text).rstrip(), row.style)]
    wrapped = textwrap.wrap(row.text, width=width, initial_indent=lead, subsequent_indent=hang,
                            break_on_hyphens=False, drop_whitespace=True) or [lead]
    return [(line, row.style) for line in wrapped]


def summary_rows(s: Summary, tz: tzinfo | None, root: str = "") -> list[Row]:
    rows = [Row(f"logsense report: {s.headline()}", style="bold")]
    if s.hosts:
        rows.append(Row(", ".join(one_line(h) for h in s.hosts), label="Hosts"))
    if s.vms:
        rows.append(Row(f"{len(s.vms)}: " + ", ".join(one_line(v) for v in s.vms), label="VMs hit"))
    if s.first_seen and s.last_seen:
        rows.append(Row(format_span(s.first_seen, s.last_seen, tz), label="Time span"))
    if s.read:
        rows.append(Row(", ".join(s.read), label="Read"))
    if s.not_read:
        rows.append(Row(", ".join(s.not_read), label="Not read"))
    rows += [Row(one_line(x), label="Also") for x in s.other_stats]
    if root:
        rows.append(Row(clip(root), label="Logs in"))
    if s.warnings:
        rows.append(Row(plural(len(s.warnings), "warning") + ":", label="Warnings", style="yellow"))
        rows += [Row("- " + clip(w), indent=LABEL, hang=LABEL + 2) for w in s.warnings[:MAX_WARNINGS]]
        if len(s.warnings) > MAX_WARNINGS:
            rows.append(Row(f"… {len(s.warnings) - MAX_WARNINGS} more", indent=LABEL))
    return rows


def log_root(incidents: list[dict]) -> str:
    """The folder every evidence file is under (with its slash), so each line names only the rest."""
    files = sorted({e["file"] for inc in incidents for e in inc["evidence"] if e.get("file")})
    if len(files) < 2:
        return ""
    try:
        root = os.path.commonpath(files)
    except ValueError:  # absolute and relative paths mixed
        return ""
    return root.rstrip("/") + "/" if root not in ("", "/") else ""


def event_rows(evs: list[dict[str, Any]], day: str, tz: tzinfo | None, limit: int, root: str = "") -> list[Row]:
    rows = []
    for ev in evs[:limit]:
        same_day = parse_ts(ev["ts"], tz).date().isoformat() == day
        ts = format_ts(ev["ts"], tz, date=not same_day)
        count = f"  ×{ev['count']}" if ev.get("count", 1) > 1 else ""
        rows.append(Row(f"{ts} {clip(ev['message'])}{count}", indent=4, hang=4 + len(ts) + 1))
        place = where(ev)
        rows.append(Row(clip(place[len(root):] if root and place.startswith(root) else place),
                        indent=4 + len(ts) + 1, style="dim"))
    if len(evs) > limit:
        rows.append(Row(f"… {len(evs) - limit} more", indent=4))
    return rows


def group_rows(g: Group, tz: tzinfo | None, root: str = "") -> list[Row]:
    inc = g.first
    day = parse_ts(inc["first_seen"], tz).date().isoformat()
    vms = sorted({vm for i in g.incidents for vm in i["affected_vms"]})
    where_line = f"{inc['scope']} on host {one_line(inc['host'] or '-')}"
    if vms:
        where_line += "; VMs: " + ", ".join(one_line(v) for v in vms)
    rows = [
        Row(f"{inc['severity'].upper()} {one_line(g.title)}", style=SEVERITY_STYLE.get(inc["severity"], "bold")),
        Row(format_span(inc["first_seen"], inc["last_seen"], tz), indent=2, label="When"),
        Row(where_line, indent=2, label="Scope"),
        Row(f"{inc['category']}; root cause {one_line(inc['root_cause'] or 'unrecognised')}", indent=2,
            label="Category"),
        Row(one_line(inc["explanation"]), indent=2, label="Why"),
    ]
    if inc["recovered_at"]:
        rows.append(Row(format_ts(inc["recovered_at"], tz), indent=2, label="Recovered"))
    evidence, context = split_evidence(inc)
    rows.append(Row("Evidence", indent=2, style="bold"))
    rows += event_rows(evidence, day, tz, MAX_EVIDENCE, root)
    if context:
        rows.append(Row(f"Context ({plural(len(context), 'line')} around it, not evidence)", indent=2, style="bold"))
        rows += event_rows(context, day, tz, MAX_CONTEXT, root)
    if inc["remediation"]:
        rows.append(Row("Fix", indent=2, style="bold"))
        rows += [Row(f"{n}. {one_line(s)}", indent=4, hang=4 + len(str(n)) + 2)
                 for n, s in enumerate(inc["remediation"], 1)]
    if inc["diagnostics"]:
        rows.append(Row("Confirm", indent=2, style="bold"))
        rows += [Row("$ " + one_line(s), indent=4, hang=8, command=True) for s in inc["diagnostics"]]
    if g.others:
        rows.append(Row(f"Same on ({plural(len(g.others), 'more incident')})", indent=2, style="bold"))
        for o in g.others[:MAX_OTHERS]:
            who = ", ".join(one_line(v) for v in o["affected_vms"]) or one_line(o["vm"] or "-")
            host = f"  host {one_line(o['host'])}" if o["host"] else ""
            rows.append(Row(f"{who}  {format_span(o['first_seen'], o['last_seen'], tz)}{host}", indent=4, hang=6))
        if len(g.others) > MAX_OTHERS:
            rows.append(Row(f"… {len(g.others) - MAX_OTHERS} more", indent=4))
    return rows


def unrecognised_rows(unrecognised: list[dict]) -> list[Row]:
    if not unrecognised:
        return []
    rows = [Row("Unrecognised errors (no pattern knows them yet)", style="bold")]
    return rows + [Row(f"{u['count']:>5} × {clip(u['shape'], 150)}", indent=2, hang=10) for u in unrecognised]


def terminal_width(out: TextIO) -> int:
    try:
        return os.get_terminal_size(out.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 80


def plain_width() -> int:
    """80, or $COLUMNS when set (a pipe has no width of its own)."""
    try:
        return int(os.environ.get("COLUMNS", "80"))
    except ValueError:
        return 80


def write_text(out: TextIO, incidents: list[dict], stats: dict, unrecognised: list[dict],
               color: bool | None = None, warnings: list[str] | None = None, width: int | None = None,
               tz: tzinfo | None = None) -> None:
    """The report for a person. Rich panels and colour only when drawing to a terminal (or
    `color=True`); plain text otherwise."""
    tty = color if color is not None else out.isatty()
    width = max(MIN_WIDTH, min(width or (terminal_width(out) if tty else plain_width()), MAX_WIDTH))
    groups = group_incidents(incidents)
    root = log_root(incidents)
    blocks = [(None, summary_rows(summarise(incidents, stats, warnings), tz, root))]
    blocks += [(SEVERITY_STYLE.get(g.first["severity"], "white"), group_rows(g, tz, root)) for g in groups]
    if unrecognised:
        blocks.append((None, unrecognised_rows(unrecognised)))
    if tty:
        _draw_rich(out, blocks, width)
    else:
        out.write("\n\n".join("\n".join(line.rstrip() for row in rows for line, _ in wrap_row(row, width))
                              for _, rows in blocks) + "\n")


def _draw_rich(out: TextIO, blocks: list[tuple[str | None, list[Row]]], width: int) -> None:
    """Each incident group in a panel bordered in its severity's colour."""
    from rich.console import Console
    from rich.panel import Panel
    from rich.text import Text

    con = Console(file=out, force_terminal=True, highlight=False, width=width)

    def body(rows: list[Row], inner: int) -> Text:
        text = Text(no_wrap=True, overflow="ignore")
        lines = [(line, row, n) for row in rows for n, (line, _) in enumerate(wrap_row(row, inner))]
        for k, (line, row, n) in enumerate(lines):
            if k:
                text.append("\n")
            if row.label and n == 0:
                lead = " " * row.indent + f"{row.label:<{LABEL}}"
                text.append(lead, style="bold")
                text.append(line[len(lead):], style=row.style)
            else:
                text.append(line, style=row.style)
        return text

    for border, rows in blocks:
        if border is None:
            con.print(body(rows, width))
        else:
            con.print(Panel(body(rows, width - 4), border_style=border.replace("bold ", ""), expand=True))
