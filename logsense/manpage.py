"""logsense(1), written from the command line's own help, so the page never drifts from `--help`."""

from __future__ import annotations

import datetime as dt
from typing import Any

import typer


def roff(text: str) -> str:
    """Text safe for a roff line: backslashes, leading dots and quotes escaped."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in text.splitlines())


def _commands(group: Any, ctx: typer.Context, prefix: str) -> list[tuple[str, Any, typer.Context]]:
    out = []
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        sub = typer.Context(cmd, info_name=name, parent=ctx)
        if hasattr(cmd, "list_commands"):  # a group of commands
            out.extend(_commands(cmd, sub, f"{prefix}{name} "))
        else:
            out.append((f"{prefix}{name}", cmd, sub))
    return out


def _options(cmd: Any, ctx: typer.Context) -> list[str]:
    lines = []
    for param in cmd.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None or param.param_type_name != "option":
            continue
        term, help_text = record
        lines += [".TP", f"\\fB{roff(term)}\\fR", roff(help_text or "")]
    return lines


def manpage(group: Any, version: str, extra: list[tuple[str, str]]) -> str:
    """The page: NAME, SYNOPSIS, DESCRIPTION, one COMMANDS entry per command with its options,
    then `extra` sections (title, plain text; blank lines separate paragraphs)."""
    ctx = typer.Context(group, info_name="logsense")
    date = dt.date.today().isoformat()
    lines = [f'.TH LOGSENSE 1 "{date}" "logsense {version}" "User Commands"', ".SH NAME",
             "logsense \\- " + roff((group.help or "").split("\n")[0].rstrip(".")),
             ".SH SYNOPSIS", "\\fBlogsense\\fR \\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIPATH\\fR ...]",
             ".SH OPTIONS"]
    lines += _options(group, ctx)
    lines.append(".SH COMMANDS")
    for name, cmd, sub in _commands(group, ctx, ""):
        usage = " ".join(cmd.collect_usage_pieces(sub))
        lines += [f".SS {roff(name)}", f"\\fBlogsense {roff(name)}\\fR {roff(usage)}", ".PP",
                  roff(" ".join((cmd.help or "").split()))]
        lines += _options(cmd, sub)
    for title, body in extra:
        lines.append(f".SH {title.upper()}")
        for para in body.strip().split("\n\n"):
            lines += [".PP", roff(" ".join(para.split()))]
    return "\n".join(lines) + "\n"
