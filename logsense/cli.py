"""The `logsense` command (CONTRACT.md). Exit 0 ok, 1 with --fail-on, 2 usage or input error."""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from logsense import SAMPLE
from logsense.catalogue import BUILTIN_DIR, CatalogueError, load_catalogue, pattern_files
from logsense.i18n import check_lang, t
from logsense.model import Event
from logsense.pipeline import InputError, Options, Reader, parse_time, parse_zone, stderr_warn
from logsense.text import safe

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Log analysis and error correlation for KVM hosts.")
catalogue_app = typer.Typer(no_args_is_help=True, help="Inspect and validate the pattern catalogue.")
app.add_typer(catalogue_app, name="catalogue")


class Format(StrEnum):
    text = "text"
    json = "json"
    jsonl = "jsonl"
    markdown = "markdown"
    html = "html"
    parquet = "parquet"
    record = "record"


PathsArg = Annotated[list[str] | None, typer.Argument(help="Files, directories, archives, journals.")]
FormatOpt = Annotated[Format | None, typer.Option("--format", "-f", help="Output format.")]
SinceOpt = Annotated[str | None, typer.Option(help="Only lines at or after this time (ISO 8601).")]
UntilOpt = Annotated[str | None, typer.Option(help="Only lines at or before this time (ISO 8601).")]
TzOpt = Annotated[str | None, typer.Option("--tz", help="Zone of syslog stamps that carry none.")]
YearOpt = Annotated[int | None, typer.Option(help="Year of syslog lines that carry none.")]
HostOpt = Annotated[str | None, typer.Option(help="Host name for sources that carry none.")]
CatOpt = Annotated[list[str] | None, typer.Option("--catalogue", help="Extra or replacement pattern files.")]
LangOpt = Annotated[str | None, typer.Option("--lang", help="Language of titles, explanations and headings: "
                                             "en or zh (default: from LANGUAGE, LC_ALL, LC_MESSAGES, LANG).")]


def pick_lang(lang: str | None) -> str:
    """--lang, else the locale's language; a usage error for an unknown one."""
    try:
        return check_lang(lang)
    except ValueError as exc:
        raise InputError(f"--{exc}") from None


def text_width() -> int:
    """Columns of the text report: the terminal's ($COLUMNS first), 120 into a file or a pipe."""
    if not sys.stdout.isatty():
        return 120
    cols = os.environ.get("COLUMNS", "")
    return int(cols) if cols.isdigit() and int(cols) >= 40 else os.get_terminal_size().columns


def make_options(since, until, tz, year, host, catalogue, all_lines=False) -> Options:
    zone = parse_zone(tz)
    return Options(since=parse_time(since, zone), until=parse_time(until, zone), tz=zone, year=year, host=host,
                   all_lines=all_lines, catalogue_dirs=list(catalogue or []))


def default_format(fmt: Format | None, piped: Format) -> Format:
    if fmt is not None:
        return fmt
    return Format.text if sys.stdout.isatty() else piped


def event_text(ev: Event, lang: str = "en") -> str:
    r = ev.record
    where = f"{r.file}:{r.line}" if r.file else (r.cursor or "journal")
    tag = ev.pattern_id or (t("events.unrecognised", lang) if ev.shape else "-")
    return (f"{r.ts.isoformat(timespec='seconds')} {safe(r.host or '-')} {safe(ev.vm or '-')} "
            f"{ev.severity or '-':8} {tag}  {safe(r.message[:300])}  [{safe(where)}]")


@app.command()
def events(paths: PathsArg = None,
           all_lines: Annotated[bool, typer.Option("--all", help="Unmatched lines too.")] = False,
           fmt: FormatOpt = None, output: Annotated[str | None, typer.Option("-o", "--output")] = None,
           since: SinceOpt = None, until: UntilOpt = None, tz: TzOpt = None, year: YearOpt = None,
           host: HostOpt = None, catalogue: CatOpt = None, lang: LangOpt = None) -> None:
    """The classified events, one per matched line (--all: every line)."""
    lang = pick_lang(lang)
    opts = make_options(since, until, tz, year, host, catalogue, all_lines)
    reader = Reader(opts, warn=stderr_warn)
    evs = reader.events(paths or [])
    fmt = default_format(fmt, Format.jsonl)
    if fmt == Format.record:
        raise InputError("an incident record is written by 'logsense analyze --format record'")
    if fmt == Format.parquet:
        from logsense.frame import events_frame
        if not output:
            raise InputError("--format parquet needs -o FILE")
        events_frame(evs).to_parquet(output)
        return
    out = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
    try:
        if fmt == Format.json:
            json.dump({"events": [e.to_dict() for e in evs], "stats": reader.run.stats}, out, indent=2)
            out.write("\n")
        elif fmt == Format.jsonl:
            for e in evs:
                out.write(json.dumps(e.to_dict()) + "\n")
        else:
            for e in evs:
                out.write(event_text(e, lang) + "\n")
    finally:
        if output:
            out.close()


WindowOpt = Annotated[float, typer.Option("--window", help="Seconds of quiet that close an incident.")]
FailOpt = Annotated[str | None, typer.Option("--fail-on", help="Exit 1 if an incident this severe or worse.")]
GraceOpt = Annotated[float, typer.Option("--reboot-grace", help="Seconds after a host boot within which a VM "
                                         "that ran before must be running again.")]


@contextmanager
def file_progress():
    """A progress line on stderr while files are read, only when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.completed} files · {task.description}"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("", total=None)
        yield lambda name: progress.update(task, advance=1, description=safe(name[-70:]))


def run_analysis(paths: list[str], opts: Options, fmt: Format | None, output: str | None, window: float,
                 fail_on: str | None, show_entities: bool, grace: float = 600.0, lang: str = "en") -> None:
    from logsense import report
    from logsense.lifecycle import analyse
    from logsense.model import SEVERITY_RANK

    if fail_on is not None and fail_on not in SEVERITY_RANK:
        raise InputError(f"--fail-on takes critical, major or minor, not {fail_on!r}")
    if window <= 0:
        raise InputError("--window must be a positive number of seconds")
    with file_progress() as on_file:
        reader = Reader(opts, warn=stderr_warn, on_file=on_file)
        evs = reader.events(paths)
    if grace < 0:
        raise InputError("--reboot-grace must be zero or more seconds")
    incidents = [d for _, d in analyse(evs, gap=window, grace=grace, lang=lang)]  # + reboot incidents, downtime
    stats = dict(reader.run.stats)
    stats["incidents"] = len(incidents)
    unrec = report.unrecognised_summary(evs)
    fmt = default_format(fmt, Format.json)
    out = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
    try:
        if fmt == Format.json:
            report.write_json(out, incidents, stats, unrec)
        elif fmt == Format.jsonl:
            report.write_jsonl(out, incidents)
        elif fmt == Format.markdown:
            report.write_markdown(out, incidents, stats, unrec, lang)
        elif fmt == Format.html:
            report.write_html(out, incidents, stats, unrec, evs, lang)
        elif fmt == Format.record:
            from logsense.record import write_records
            write_records(out, incidents, opts.catalogue_dirs, lang)
        elif fmt == Format.text:
            report.write_text(out, incidents, stats, unrec, color=None if not output else False, lang=lang,
                              width=text_width() if not output else 120)
        else:
            raise InputError(f"analyze does not write {fmt.value}")
        if show_entities:
            print("Attribution (why events got their VM):", file=sys.stderr)
            for kind, key, vm, why in reader.run.entities.table():
                print(f"  {kind:6} {safe(key)} -> {safe(vm)}  ({safe(why)})", file=sys.stderr)
    finally:
        if output:
            out.close()
    if fail_on is not None and any(SEVERITY_RANK[i["severity"]] >= SEVERITY_RANK[fail_on] for i in incidents):
        raise typer.Exit(1)


@app.command()
def analyze(paths: PathsArg = None, fmt: FormatOpt = None,
            output: Annotated[str | None, typer.Option("-o", "--output")] = None,
            since: SinceOpt = None, until: UntilOpt = None, tz: TzOpt = None, year: YearOpt = None,
            host: HostOpt = None, catalogue: CatOpt = None, window: WindowOpt = 120.0, fail_on: FailOpt = None,
            show_entities: Annotated[bool, typer.Option("--show-entities", help="Print the VM map.")] = False,
            reboot_grace: GraceOpt = 600.0, lang: LangOpt = None,
            ) -> None:
    """Read every log under the paths, classify, correlate, print the incidents."""
    lang = pick_lang(lang)
    opts = make_options(since, until, tz, year, host, catalogue)
    run_analysis(paths or [], opts, fmt, output, window, fail_on, show_entities, reboot_grace, lang)


@app.command()
def demo(fmt: FormatOpt = None, tz: TzOpt = "UTC", lang: LangOpt = None) -> None:
    """Analyze the bundled sample outage."""
    lang = pick_lang(lang)
    if not SAMPLE.is_dir():
        raise InputError(f"the bundled sample is missing: {SAMPLE}")
    opts = make_options(None, None, tz, None, None, None)
    run_analysis([str(SAMPLE)], opts, fmt or Format.text, None, 120.0, None, False, lang=lang)


@app.command()
def vms(paths: PathsArg = None, fmt: FormatOpt = None,
        output: Annotated[str | None, typer.Option("-o", "--output")] = None,
        since: SinceOpt = None, until: UntilOpt = None, tz: TzOpt = None, year: YearOpt = None,
        host: HostOpt = None, catalogue: CatOpt = None, reboot_grace: GraceOpt = 600.0, lang: LangOpt = None) -> None:
    """Each VM's life from the logs: state at the end, last start and stop with reasons, crashes,
    failed starts, downtime (json: every running interval and the host's boots and shutdowns)."""
    from logsense import vms_report
    from logsense.lifecycle import analyse, timeline

    lang = pick_lang(lang)
    opts = make_options(since, until, tz, year, host, catalogue)
    with file_progress() as on_file:
        evs = Reader(opts, warn=stderr_warn, on_file=on_file).events(paths or [])
    tl = timeline(evs, reboot_grace)
    fmt = default_format(fmt, Format.json)
    out = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
    try:
        if fmt == Format.json:
            vms_report.write_json(out, tl)
        elif fmt == Format.markdown:
            vms_report.write_markdown(out, tl, lang)
        elif fmt == Format.html:
            vms_report.write_html(out, tl, [d for _, d in analyse(evs, grace=reboot_grace, lang=lang)], lang)
        elif fmt == Format.text:
            vms_report.write_text(out, tl, lang)
        else:
            raise InputError(f"vms does not write {fmt.value} (text, json, markdown or html)")
    finally:
        if output:
            out.close()


@catalogue_app.command("list")
def catalogue_list(catalogue: CatOpt = None) -> None:
    """Every pattern: id, category, severity, title."""
    cat = load_catalogue(catalogue or [])
    for p in sorted(cat.patterns, key=lambda p: p.id):
        print(f"{p.id:55} {p.category:12} {p.severity:8} {p.title}")


@catalogue_app.command("show")
def catalogue_show(pattern_id: str, catalogue: CatOpt = None) -> None:
    """Everything about one pattern, examples included."""
    cat = load_catalogue(catalogue or [])
    p = cat.by_id.get(pattern_id)
    if p is None:
        raise InputError(f"no pattern with id {pattern_id!r} (see 'logsense catalogue list')")
    print(f"id:          {p.id}\nfile:        {p.file}\nsources:     {', '.join(p.sources)}")
    print(f"category:    {p.category}\nseverity:    {p.severity}\nrole:        {p.role}\nscope:       {p.scope}")
    print(f"priority:    {p.priority}\ntitle:       {p.title}\nregex:       {p.regex}\ncause:       {p.cause}")
    print("remediation:\n" + "".join(f"  - {s}\n" for s in p.remediation), end="")
    print("diagnostics:\n" + "".join(f"  $ {s}\n" for s in p.diagnostics), end="")
    print("examples:")
    for ex in p.examples:
        print(f"  {ex.line}\n    fields: {json.dumps(ex.fields)}")
    if p.near_misses:
        print("near misses:")
        for ex in p.near_misses:
            print(f"  {ex.line}")


@catalogue_app.command("check")
def catalogue_check(catalogue: CatOpt = None,
                    timing: Annotated[bool, typer.Option(help="Time each regex on adversarial lines.")] = True
                    ) -> None:
    """Validate every pattern; exit non-zero with one line per problem."""
    from logsense.catalogue_check import check_catalogue, without_literal
    from logsense.record import record_problems

    cat = load_catalogue(catalogue or [], vet_site=False)
    site = {f.name for f in pattern_files(catalogue or []) if f.parent != BUILTIN_DIR}  # may stay English
    problems = check_catalogue(cat, timing=timing, untranslated_ok=site) + record_problems(catalogue or [])
    for line in problems:
        print(line, file=sys.stderr)
    examples = sum(len(p.examples) for p in cat.patterns)
    if problems:
        print(f"catalogue check: {len(problems)} problem(s) in {len(cat.patterns)} patterns", file=sys.stderr)
        raise typer.Exit(1)
    print(f"catalogue check: {len(cat.patterns)} patterns, {examples} examples, all good")
    if bare := without_literal(cat):  # info, not a failure: correct, but every line runs them
        print(f"catalogue check: info: {len(bare)} pattern(s) have no literal for the portable prefilter "
              f"(always candidates where Hyperscan is missing): {', '.join(bare)}")


@catalogue_app.command("test")
def catalogue_test(path: Annotated[Path, typer.Argument(help="A log file.")],
                   catalogue: CatOpt = None, tz: TzOpt = None, year: YearOpt = None) -> None:
    """Which lines of a log match which pattern (for people writing patterns)."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    opts = make_options(None, None, tz, year, None, catalogue, all_lines=True)
    reader = Reader(opts, warn=stderr_warn)
    for ev in reader.events([str(path)]):
        r = ev.record
        tag = ev.pattern_id or ("(unrecognised error)" if ev.shape else "")
        if tag:
            fields = " ".join(f"{k}={safe(v)}" for k, v in ev.fields.items())
            print(f"{r.line or '-':>6}  {tag}  {fields}")
    s = reader.run.stats
    print(f"{int(s['lines_read'])} lines, {int(s['events_matched'])} matched")


class Emit(StrEnum):
    incidents = "incidents"
    events = "events"


@app.command()
def watch(paths: Annotated[list[str] | None, typer.Argument(
              help="Files, directories (every log file under them, also later ones) or globs. "
                   "Default: /var/log/libvirt, /var/log/messages or /var/log/syslog, and the journal.")] = None,
          config: Annotated[str | None, typer.Option("--config", help="TOML config file.")] = None,
          state_dir: Annotated[str | None, typer.Option("--state-dir", help="Where positions are saved.")] = None,
          no_journal: Annotated[bool, typer.Option("--no-journal", help="Do not follow the journal.")] = False,
          journal_dir: Annotated[str | None, typer.Option("--journal-dir", help="Follow this journal directory.")
                                 ] = None,
          from_start: Annotated[bool, typer.Option("--from-start", help="Read files present at the first start "
                                                   "from their beginning.")] = False,
          window: Annotated[float | None, typer.Option("--window", help="Seconds of quiet that close an incident.")
                            ] = None,
          sink: Annotated[list[str] | None, typer.Option(
              "--sink", help="stdout | journal | file:PATH | command:CMD ARGS | webhook:URL | alertmanager:URL | "
                            "email:ADDRESS (repeatable; replaces the config's sinks; filters: config file).")
                          ] = None,
          emit: Annotated[Emit | None, typer.Option("--emit", help="Emit incidents (default) or every event.")
                          ] = None,
          all_lines: Annotated[bool, typer.Option("--all", hidden=True, help="With --emit events: every line.")
                               ] = False,
          metrics: Annotated[str | None, typer.Option(
              "--metrics", help="Serve Prometheus metrics on HOST:PORT (/metrics); off by default.")] = None,
          metrics_textfile: Annotated[str | None, typer.Option(
              "--metrics-textfile", help="Write the metrics to this node-exporter textfile (atomically).")] = None,
          tz: TzOpt = None, host: HostOpt = None, catalogue: CatOpt = None, lang: LangOpt = None) -> None:
    """The daemon: follow the logs and the journal, emit incidents as they open, change and resolve."""
    from logsense.daemon import watch as run_watch

    lang = pick_lang(lang) if lang is not None else None  # else the config's `lang`, else the locale
    overrides = {"paths": paths or None, "state_dir": state_dir, "journal": False if no_journal else None,
                 "journal_dir": journal_dir, "from_start": True if from_start else None, "window": window,
                 "emit": emit.value if emit else None, "all_lines": True if all_lines else None, "tz": tz,
                 "host": host, "catalogue": catalogue or None, "metrics": metrics, "metrics_textfile": metrics_textfile,
                 "lang": lang}
    raise typer.Exit(run_watch(config, overrides, sink))


def main() -> None:
    """Entry point: every failure is one line on stderr, never a traceback."""
    try:
        rc = app(standalone_mode=False)
        sys.exit(rc if isinstance(rc, int) else 0)
    except (InputError, CatalogueError) as exc:
        for line in str(exc).splitlines() or ["error"]:
            print(f"logsense: error: {line}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)
    except Exception as exc:  # the promise is no traceback reaching a user
        if callable(getattr(exc, "show", None)) and hasattr(exc, "exit_code"):  # typer's usage errors
            exc.show()
            sys.exit(exc.exit_code or 2)
        if os.environ.get("LOGSENSE_DEBUG"):
            raise
        print(f"logsense: internal error: {type(exc).__name__}: {exc} (LOGSENSE_DEBUG=1 shows more)",
              file=sys.stderr)
        sys.exit(2)
