"""The text report: summary first, then one block per group of identical incidents.

Laid out once as rows, then drawn two ways: plain lines wrapped to the width (files, pipes,
`less`: fast, no escape codes) or rich panels with colour when drawing to a terminal. Rows are
wrapped here, at spaces, so 80 columns stay readable: prose never breaks inside a word unless
the word is longer than a line, and a command breaks only between shell words, with ` \\`, so
it still pastes and runs.
"""

from __future__ import annotations

import os
import re
import textwrap
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, TextIO

from rich.cells import cell_len

from logsense.catalogue import quote_spans
from logsense.i18n import t, tn, word
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
from logsense.text import one_line

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


WIDE_RE = re.compile(r"[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6]")
TOKEN_RE = re.compile(WIDE_RE.pattern + r"|\s+|[^\s" + WIDE_RE.pattern[1:-1] + r"]+")


CLOSERS = "。，、；：？！）」』】》〉”’…"  # never first on a line
OPENERS = "（「『【《〈“‘"  # never last on a line


def label_lead(row: Row) -> str:
    """The indent and the label padded to LABEL terminal cells (a CJK character takes two)."""
    if not row.label:
        return " " * row.indent
    return " " * row.indent + row.label + " " * max(LABEL - cell_len(row.label), 1 if WIDE_RE.search(row.label) else 0)


def wrap_cells(text: str, width: int, lead: str, hang: str) -> list[str]:
    """Greedy wrapping by terminal cells for text with CJK characters: a line may break at a
    space or between two CJK characters (no space is added there), a word longer than a line
    is cut."""
    units: list[tuple[str, bool]] = []  # (text, space before): CJK punctuation kept on its neighbour
    space = False
    for tok in TOKEN_RE.findall(text):
        if tok.isspace():
            space = True
            continue
        if units and not space and (tok[0] in CLOSERS or units[-1][0][-1] in OPENERS):
            units[-1] = (units[-1][0] + tok, units[-1][1])
        else:
            units.append((tok, space))
        space = False
    lines, cur = [], lead
    for tok, space in units:
        piece = (" " if space and cur.strip() else "") + tok
        if cell_len(cur) + cell_len(piece) > width and cur.strip():
            lines.append(cur)
            cur, piece = hang, tok
        while cell_len(cur) + cell_len(piece) > width and cell_len(hang) + 1 < width:  # an over-long word
            room = width - cell_len(cur)
            cut = max(1, next((i for i in range(len(piece), 0, -1) if cell_len(piece[:i]) <= room), 1))
            lines.append(cur + piece[:cut])
            cur, piece = hang, piece[cut:]
        cur += piece
    lines.append(cur)
    return [line.rstrip() for line in lines]


def wrap_row(row: Row, width: int) -> list[tuple[str, str]]:
    """(text, style) lines of one row; the label is part of the first line."""
    lead = label_lead(row)
    hang = " " * (row.hang if row.hang is not None else cell_len(lead))
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
    if cell_len(lead + row.text) != len(lead + row.text):  # wide characters: textwrap counts characters
        return [(line, row.style) for line in wrap_cells(row.text, width, lead, hang)]
    wrapped = textwrap.wrap(row.text, width=width, initial_indent=lead, subsequent_indent=hang,
                            break_on_hyphens=False, drop_whitespace=True) or [lead]
    return [(line, row.style) for line in wrapped]


def summary_rows(s: Summary, tz: tzinfo | None, root: str = "", lang: str = "en") -> list[Row]:
    sep = t("list.sep", lang)
    rows = [Row(t("text.title", lang, headline=s.headline()), style="bold")]
    if s.hosts:
        rows.append(Row(", ".join(one_line(h) for h in s.hosts), label=t("label.hosts", lang)))
    if s.vms:
        rows.append(Row(f"{len(s.vms)}: " + ", ".join(one_line(v) for v in s.vms), label=t("label.vms_hit", lang)))
    if s.first_seen and s.last_seen:
        rows.append(Row(format_span(s.first_seen, s.last_seen, tz), label=t("label.time_span", lang)))
    if s.read:
        rows.append(Row(sep.join(s.read), label=t("label.read", lang)))
    if s.not_read:
        rows.append(Row(sep.join(s.not_read), label=t("label.not_read", lang)))
    rows += [Row(one_line(x), label=t("label.also", lang)) for x in s.other_stats]
    if root:
        rows.append(Row(clip(root), label=t("label.logs_in", lang)))
    if s.warnings:
        rows.append(Row(tn("warnings", len(s.warnings), lang), label=t("label.warnings", lang), style="yellow"))
        rows += [Row("- " + clip(w), indent=LABEL, hang=LABEL + 2) for w in s.warnings[:MAX_WARNINGS]]
        if len(s.warnings) > MAX_WARNINGS:
            rows.append(Row(t("label.more", lang, n=len(s.warnings) - MAX_WARNINGS), indent=LABEL))
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


def event_rows(evs: list[dict[str, Any]], day: str, tz: tzinfo | None, limit: int, root: str = "",
               lang: str = "en") -> list[Row]:
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
        rows.append(Row(t("label.more", lang, n=len(evs) - limit), indent=4))
    return rows


def group_rows(g: Group, tz: tzinfo | None, root: str = "", lang: str = "en") -> list[Row]:
    inc = g.first
    day = parse_ts(inc["first_seen"], tz).date().isoformat()
    vms = sorted({vm for i in g.incidents for vm in i["affected_vms"]})
    where_line = t("scope.line", lang, scope=word("scope", inc["scope"], lang), host=one_line(inc["host"] or "-"))
    if vms:
        where_line += t("scope.vms", lang, vms=", ".join(one_line(v) for v in vms))
    severity = inc["severity"].upper() if lang == "en" else word("severity", inc["severity"], lang)
    root_cause = one_line(inc["root_cause"] or t("label.unrecognised", lang))
    rows = [
        Row(f"{severity} {one_line(g.title)}", style=SEVERITY_STYLE.get(inc["severity"], "bold")),
        Row(format_span(inc["first_seen"], inc["last_seen"], tz), indent=2, label=t("label.when", lang)),
        Row(where_line, indent=2, label=t("label.scope", lang)),
        Row(t("category.line", lang, category=inc["category"], root=root_cause), indent=2,
            label=t("label.category", lang)),
        Row(one_line(inc["explanation"]), indent=2, label=t("label.why", lang)),
    ]
    if inc["recovered_at"]:
        rows.append(Row(format_ts(inc["recovered_at"], tz), indent=2, label=t("label.recovered", lang)))
    evidence, context = split_evidence(inc)
    rows.append(Row(t("label.evidence", lang), indent=2, style="bold"))
    rows += event_rows(evidence, day, tz, MAX_EVIDENCE, root, lang)
    if context:
        rows.append(Row(tn("context", len(context), lang), indent=2, style="bold"))
        rows += event_rows(context, day, tz, MAX_CONTEXT, root, lang)
    if inc["remediation"]:
        rows.append(Row(t("label.fix", lang), indent=2, style="bold"))
        rows += [Row(f"{n}. {one_line(s)}", indent=4, hang=4 + len(str(n)) + 2)
                 for n, s in enumerate(inc["remediation"], 1)]
    if inc["diagnostics"]:
        rows.append(Row(t("label.confirm", lang), indent=2, style="bold"))
        rows += [Row("$ " + one_line(s), indent=4, hang=8, command=True) for s in inc["diagnostics"]]
    if g.others:
        rows.append(Row(tn("same_on", len(g.others), lang), indent=2, style="bold"))
        for o in g.others[:MAX_OTHERS]:
            who = ", ".join(one_line(v) for v in o["affected_vms"]) or one_line(o["vm"] or "-")
            host = f"  {t('label.host', lang)} {one_line(o['host'])}" if o["host"] else ""
            rows.append(Row(f"{who}  {format_span(o['first_seen'], o['last_seen'], tz)}{host}", indent=4, hang=6))
        if len(g.others) > MAX_OTHERS:
            rows.append(Row(t("label.more", lang, n=len(g.others) - MAX_OTHERS), indent=4))
    return rows


def unrecognised_rows(unrecognised: list[dict], lang: str = "en") -> list[Row]:
    if not unrecognised:
        return []
    rows = [Row(f"{t('report.unrecognised', lang)} {t('report.unrecognised_hint', lang)}", style="bold")]
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
               tz: tzinfo | None = None, lang: str = "en") -> None:
    """The report for a person. Rich panels and colour only when drawing to a terminal (or
    `color=True`); plain text otherwise. Headings and labels in `lang`."""
    tty = color if color is not None else out.isatty()
    width = max(MIN_WIDTH, min(width or (terminal_width(out) if tty else plain_width()), MAX_WIDTH))
    groups = group_incidents(incidents, lang)
    root = log_root(incidents)
    blocks = [(None, summary_rows(summarise(incidents, stats, warnings, lang), tz, root, lang))]
    blocks += [(SEVERITY_STYLE.get(g.first["severity"], "white"), group_rows(g, tz, root, lang)) for g in groups]
    if unrecognised:
        blocks.append((None, unrecognised_rows(unrecognised, lang)))
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
                lead = label_lead(row)
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
