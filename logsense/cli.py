"""The `logsense` command (CONTRACT.md). Exit 0 ok, 1 with --fail-on, 2 usage or input error."""

from __future__ import annotations

import importlib
import json
import math
import os
import sys
from collections.abc import Iterable
from contextlib import contextmanager
from datetime import UTC, tzinfo
from enum import StrEnum
from typing import Annotated

import typer

from logsense import CONTRIB, SAMPLE, __version__
from logsense.catalogue import BUILTIN_DIR, Catalogue, CatalogueError, load_catalogue, pattern_files
from logsense.config import read_settings
from logsense.correlator import DEFAULT_GAP, MAX_WINDOW
from logsense.filters import Filters
from logsense.i18n import check_lang, t
from logsense.lifecycle import DEFAULT_GRACE
from logsense.model import CATEGORIES, Event, Record
from logsense.parallel import default_jobs
from logsense.pipeline import InputError, Options, Reader, Run, parse_time, parse_zone, stderr_warn
from logsense.text import one_line, safe
from logsense.timespec import local_zone, zone_name

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Log analysis and error correlation for KVM hosts.")
catalogue_app = typer.Typer(no_args_is_help=True, help="Inspect and validate the pattern catalogue.")
app.add_typer(catalogue_app, name="catalogue")
# Typer prints an argument's Python type (`<list[str]>`) beside its name; the metavar says it for people.
typer.core.TyperArgument.display_type_rich = lambda self, ctx: None


class EventsFormat(StrEnum):
    text = "text"
    json = "json"
    jsonl = "jsonl"
    parquet = "parquet"


class AnalyzeFormat(StrEnum):
    text = "text"
    json = "json"
    jsonl = "jsonl"
    markdown = "markdown"
    html = "html"
    record = "record"


class VmsFormat(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"
    html = "html"


class Severity(StrEnum):
    critical = "critical"
    major = "major"
    minor = "minor"


Category = StrEnum("Category", {c: c for c in CATEGORIES})


PathsArg = Annotated[list[str] | None, typer.Argument(
    metavar="PATH", show_default=False,
    help="Files, directories, archives, journals; - is standard input. None: the live host.")]
EventsFormatOpt = Annotated[EventsFormat, typer.Option("--format", "-f", help="Output format.")]
AnalyzeFormatOpt = Annotated[AnalyzeFormat, typer.Option("--format", "-f", help="Output format.")]
VmsFormatOpt = Annotated[VmsFormat, typer.Option("--format", "-f", help="Output format.")]
OutputOpt = Annotated[str | None, typer.Option("--output", "-o", metavar="FILE",
                                               help="Write the output to FILE instead of standard output.")]
SinceOpt = Annotated[str | None, typer.Option(
    metavar="TIME", help="Only lines at or after TIME, as journalctl takes it: '1 hour ago', yesterday, today, "
                         "10:00, -2h, 2024-03-05T10:00+01:00. Without a zone: this machine's (or --utc).")]
UntilOpt = Annotated[str | None, typer.Option(metavar="TIME", help="Only lines at or before TIME (as --since).")]
TzOpt = Annotated[str | None, typer.Option("--tz", metavar="ZONE", help="Zone of syslog lines that carry none "
                                           "(default: the machine's); times print in it too. Not --since's.")]
YearOpt = Annotated[int | None, typer.Option(metavar="YEAR", help="Year of syslog lines that carry none.")]
HostOpt = Annotated[str | None, typer.Option(metavar="NAME", help="Host name for sources that carry none; "
                                                                "only this host's lines where they name one.")]
CatOpt = Annotated[list[str] | None, typer.Option("--catalogue", metavar="DIR",
                                                  help="Extra or replacement pattern files (repeatable).")]
UtcOpt = Annotated[bool, typer.Option("--utc", help="Print times in UTC, and read --since/--until in UTC.")]
ConfigOpt = Annotated[str | None, typer.Option(
    "--config", metavar="FILE", help="Settings (default: /etc/logsense/logsense.toml and its conf.d/*.toml).")]
VmOpt = Annotated[list[str] | None, typer.Option("--vm", metavar="NAME", help="Only this VM (repeatable).")]
CategoryOpt = Annotated[list[Category] | None, typer.Option(
    "--category", metavar="<" + "|".join(CATEGORIES) + ">", help="Only this category (repeatable).")]
MinSeverityOpt = Annotated[Severity | None, typer.Option("--min-severity", help="Only this severe or worse.")]
LangOpt = Annotated[str | None, typer.Option(
    "--lang", metavar="en|zh", help="Language of titles, explanations and headings (default: the setting lang, "
                                    "else the locale: LANGUAGE, LC_ALL, LC_MESSAGES, LANG; zh_* gives zh).")]
JobsOpt = Annotated[int | None, typer.Option("--jobs", metavar="N", help="Worker processes that parse and classify "
                                              "the files (default: the cores; 1: one process).")]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Exit 2 when an input could not be read in full "
                                                          "(a damaged archive, an unreadable file).")]


class NothingRead(Exception):
    """No input could be read at all: exit 3, never a report of "no incidents"."""


def require(module: str, what: str, package: str) -> None:
    """An optional dependency `what` needs, imported before any reading: missing, it is one
    line (exit 2) at once, not a traceback after the whole archive was read."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise InputError(f"{what} needs {module.partition('.')[0]} (pip install {package})") from None


def check_read(run: Run) -> None:
    """Before any output: reading nothing is an error that says what was not read."""
    if run.nothing_read:
        raise NothingRead("nothing could be read: " + "; ".join(run.missing or ["no log file found"]))


def check_strict(run: Run, strict: bool) -> None:
    """After the output: with --strict, input read only in part fails the run."""
    if strict and run.missing:
        raise InputError(f"--strict: {len(run.missing)} input(s) not read in full (see the warnings)")


def show_version(value: bool) -> None:
    if value:
        print(f"logsense {__version__}")
        raise typer.Exit()


@app.callback()
def root(version: Annotated[bool, typer.Option("--version", is_eager=True, callback=show_version,
                                               help="Print the version and exit.")] = False) -> None:
    """Log analysis and error correlation for KVM hosts: libvirt, QEMU, kernel and journal logs
    into explained incidents."""


def open_output(output: str | None):
    """-o FILE, or standard output; a path that cannot be written is one input error."""
    if not output:
        return sys.stdout
    try:
        return open(output, "w", encoding="utf-8")  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise InputError(f"{output}: cannot write: {exc.strerror or exc}") from exc


def check_window(window: float) -> float:
    if not math.isfinite(window) or not 0 < window <= MAX_WINDOW:
        raise InputError(f"--window must be a number of seconds between 0 and {MAX_WINDOW:.0f}")
    return window


def make_options(since, until, tz, year, host, catalogue, all_lines=False, *, utc: bool = False,
                 config: str | None = None) -> Options:
    """Flags over settings. --tz is the zone of syslog lines (and of printed times); --since/--until
    without a zone are read as journalctl reads them, in this machine's zone (UTC with --utc)."""
    settings = read_settings(config)
    if year is not None and not 1 <= year <= 9999:
        raise InputError("--year must be between 1 and 9999")
    zone = parse_zone(tz or settings.get("tz"))
    given = local_zone() if not utc else UTC
    shown = UTC if utc else parse_zone(tz) if tz else local_zone()
    return Options(since=parse_time(since, given), until=parse_time(until, given), tz=zone, year=year,
                   host=host or settings.get("host"), all_lines=all_lines,
                   catalogue_dirs=[*settings.get("catalogue", []), *(catalogue or [])],
                   disable=list(settings.get("disable", [])), display_tz=shown)


def check_jobs(jobs: int | None) -> int:
    """--jobs: at least 1; none given: the cores."""
    if jobs is not None and jobs < 1:
        raise InputError("--jobs must be at least 1")
    return jobs or default_jobs()


def pick_lang(lang: str | None, config: str | None = None) -> str:
    """--lang, else the settings' `lang`, else the locale's language; a usage error for an unknown one."""
    try:
        return check_lang(lang if lang is not None else read_settings(config).get("lang"))
    except ValueError as exc:
        raise InputError(f"--{exc}" if lang is not None else str(exc)) from None


def make_filters(vm, category, min_severity, host) -> Filters:
    return Filters(vms=set(vm or []), categories={str(c) for c in category or []},
                   min_severity=str(min_severity) if min_severity else None, host=host)


def where(r: Record) -> str:
    """FILE:LINE, the file alone (journal JSON on a pipe), or the journal cursor."""
    return (f"{r.file}:{r.line}" if r.line else r.file) if r.file else (r.cursor or "journal")


def event_text(ev: Event, zone: tzinfo | None = None, lang: str = "en") -> str:
    r = ev.record
    tag = ev.pattern_id or (t("events.unrecognised", lang) if ev.shape else "-")
    return (f"{r.ts.astimezone(zone).isoformat(timespec='seconds')} {safe(r.host or '-')} {safe(ev.vm or '-')} "
            f"{ev.severity or '-':8} {tag}  {one_line(r.message[:300])}  [{safe(where(r))}]")


@app.command()
def events(paths: PathsArg = None,
           all_lines: Annotated[bool, typer.Option("--all", help="Unmatched lines too.")] = False,
           fmt: EventsFormatOpt = EventsFormat.text, output: OutputOpt = None,
           since: SinceOpt = None, until: UntilOpt = None, tz: TzOpt = None, year: YearOpt = None,
           host: HostOpt = None, catalogue: CatOpt = None, strict: StrictOpt = False, utc: UtcOpt = False,
           config: ConfigOpt = None, vm: VmOpt = None, category: CategoryOpt = None,
           min_severity: MinSeverityOpt = None, lang: LangOpt = None, jobs: JobsOpt = None) -> None:
    """The classified events, one per matched line (--all: every line)."""
    lang = pick_lang(lang, config)
    if fmt == EventsFormat.parquet:
        if not output:
            raise InputError("--format parquet needs -o FILE")
        require("pyarrow", "--format parquet", "pyarrow")
    opts = make_options(since, until, tz, year, host, catalogue, all_lines, utc=utc, config=config)
    opts.jobs = check_jobs(jobs)
    reader = Reader(opts, warn=stderr_warn)
    evs = reader.iter_events(paths or [])
    check_read(reader.run)
    shown = make_filters(vm, category, min_severity, host)
    write_events((e for e in evs if shown.event(e)), reader.run, fmt, output, opts.display_tz, lang)
    check_strict(reader.run, strict)


def write_events(evs: Iterable[Event], run: Run, fmt: EventsFormat, output: str | None, zone: tzinfo | None,
                 lang: str = "en") -> None:
    """Each event written as it comes (memory stays flat however many lines were read)."""
    if fmt == EventsFormat.parquet:
        from logsense.frame import write_events_parquet_batches
        write_events_parquet_batches(evs, output)
        return
    out = open_output(output)
    try:
        if fmt == EventsFormat.json:
            from logsense.report import write_json_object
            write_json_object(out, {"events": (e.to_dict() for e in evs), "stats": run.stats})
        elif fmt == EventsFormat.jsonl:
            for e in evs:
                out.write(json.dumps(e.to_dict()) + "\n")
        else:
            for e in evs:
                out.write(event_text(e, zone, lang) + "\n")
    finally:
        if output:
            out.close()


WindowOpt = Annotated[float | None, typer.Option("--window", metavar="SECONDS", show_default=False,
                                                 help="Seconds of quiet that close an incident (default: 120).")]
FailOpt = Annotated[Severity | None, typer.Option("--fail-on", help="Exit 1 if an incident this severe or worse.")]
GraceOpt = Annotated[float | None, typer.Option("--reboot-grace", metavar="SECONDS", show_default=False,
                                                help="Seconds after a host boot within which a VM that ran before "
                                                     "must be running again (default: 600).")]


def reboot_grace_of(grace: float | None, config: str | None = None) -> float:
    """--reboot-grace, else the `reboot_grace` setting, else 600 s."""
    if grace is None:
        grace = float(read_settings(config).get("reboot_grace", DEFAULT_GRACE))
    if not math.isfinite(grace) or grace < 0:
        raise InputError("--reboot-grace must be zero or more seconds")
    return grace


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


def batch_gc() -> None:
    """A batch run keeps what it reads until the report: what is loaded so far is never
    collected, and the collector runs far less often (it was 13-18 % of `analyze`)."""
    import gc

    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def run_analysis(paths: list[str], opts: Options, fmt: AnalyzeFormat, output: str | None, window: float,
                 fail_on: Severity | None, show_entities: bool, strict: bool = False,
                 shown: Filters | None = None, grace: float = 600.0, lang: str = "en") -> None:
    """Events stream from the reader through the correlator; incidents wait on disk for the
    report (logsense/batch.py): memory follows the open windows, not the archive."""
    from logsense import batch, report
    from logsense.model import SEVERITY_RANK

    check_window(window)
    batch_gc()
    if grace < 0:
        raise InputError("--reboot-grace must be zero or more seconds")
    with file_progress() as on_file:
        reader = Reader(opts, warn=stderr_warn, on_file=on_file)
        evs = reader.iter_events(paths)
    check_read(reader.run)
    found = batch.analyse(evs, gap=window, grace=grace, lang=lang, marks=fmt == AnalyzeFormat.html)
    entries = [e for e in found.entries if shown is None or shown.incident(e.light)]
    lights = [e.light for e in entries]
    stats = dict(reader.run.stats)
    stats["incidents"] = len(entries)
    stats["display_tz"] = zone_name(opts.display_tz or local_zone())  # the zone reports print times in
    unrec = found.unrecognised
    out = open_output(output)
    warnings, zone = reader.run.warnings, opts.display_tz or local_zone()
    try:
        if fmt == AnalyzeFormat.json:
            report.write_json(out, lights, stats, unrec, warnings=warnings, whole=found.incidents(entries))
        elif fmt == AnalyzeFormat.jsonl:
            report.write_jsonl(out, found.incidents(entries))
        else:
            incidents = list(found.incidents(entries))
            if fmt == AnalyzeFormat.markdown:
                report.write_markdown(out, incidents, stats, unrec, warnings=warnings, tz=zone, lang=lang)
            elif fmt == AnalyzeFormat.html:
                report.write_html(out, incidents, stats, unrec, found.marks or [], warnings=warnings, tz=zone,
                                  lang=lang, timeline=found.timeline)
            elif fmt == AnalyzeFormat.record:
                from logsense.record import write_records
                write_records(out, incidents, opts.catalogue_dirs, lang)
            elif fmt == AnalyzeFormat.text:
                report.write_text(out, incidents, stats, unrec, color=None if not output else False,
                                  warnings=warnings, tz=zone, lang=lang)
        if show_entities:
            print("Attribution (why events got their VM):", file=sys.stderr)
            for kind, key, vm, why in reader.run.entities.table():
                print(f"  {kind:6} {safe(key)} -> {safe(vm)}  ({safe(why)})", file=sys.stderr)
    finally:
        found.close()
        if output:
            out.close()
    check_strict(reader.run, strict)
    if fail_on is not None and any(SEVERITY_RANK[i["severity"]] >= SEVERITY_RANK[fail_on] for i in lights):
        raise typer.Exit(1)


@app.command()
def analyze(paths: PathsArg = None, fmt: AnalyzeFormatOpt = AnalyzeFormat.text, output: OutputOpt = None,
            since: SinceOpt = None, until: UntilOpt = None, tz: TzOpt = None, year: YearOpt = None,
            host: HostOpt = None, catalogue: CatOpt = None, window: WindowOpt = None, fail_on: FailOpt = None,
            show_entities: Annotated[bool, typer.Option("--show-entities", help="Print the VM map on stderr.")
                                     ] = False,
            strict: StrictOpt = False, utc: UtcOpt = False, config: ConfigOpt = None, vm: VmOpt = None,
            category: CategoryOpt = None, min_severity: MinSeverityOpt = None, reboot_grace: GraceOpt = None,
            fleet: Annotated[bool, typer.Option("--fleet", help="Each path is one host (folder, sosreport or "
                                                "tarball), analysed as a task on Dask; adds fleet incidents.")
                             ] = False,
            scheduler: Annotated[str | None, typer.Option("--scheduler", metavar="ADDRESS",
                                                          help="With --fleet: the Dask scheduler (tcp://HOST:8786); "
                                                               "default: a local cluster.")] = None,
            jobs: Annotated[int | None, typer.Option("--jobs", metavar="N",
                                                     help="Worker processes that parse and classify the files; "
                                                          "with --fleet: of the local cluster (default: the cores; "
                                                          "1: one process).")] = None,
            lang: LangOpt = None) -> None:
    """Read every log under the paths, classify, correlate, print the incidents."""
    lang = pick_lang(lang, config)
    opts = make_options(since, until, tz, year, host, catalogue, utc=utc, config=config)
    if window is None:
        window = float(read_settings(config).get("window", DEFAULT_GAP))
    workers = check_jobs(jobs)
    if fleet:  # each host one Dask task, read in that worker's process (opts.jobs stays 1)
        require("dask.distributed", "--fleet", "'dask[distributed]'")
        run_fleet_analysis(paths or [], opts, fmt, output, window, fail_on, scheduler, jobs, lang)
        return
    opts.jobs = workers
    if scheduler:
        raise InputError("--scheduler needs --fleet")
    run_analysis(paths or [], opts, fmt, output, window, fail_on, show_entities, strict,
                 make_filters(vm, category, min_severity, host), reboot_grace_of(reboot_grace, config), lang)


def run_fleet_analysis(paths: list[str], opts: Options, fmt: AnalyzeFormat, output: str | None, window: float,
                       fail_on: Severity | None, scheduler: str | None, jobs: int | None, lang: str = "en") -> None:
    """`analyze --fleet`: one Dask task per host, then fleet incidents; the fleet summary first."""
    from logsense import fleet, report
    from logsense.model import SEVERITY_RANK

    if not paths:
        raise InputError("--fleet needs one path per host")
    check_window(window)
    rep = fleet.analyze_fleet(paths, opts, window, scheduler, jobs, lang)
    for r in rep.results:
        for w in r.warnings:
            stderr_warn(f"{r.host}: {w}")
        if r.error:
            stderr_warn(f"{r.host}: {r.error}")
    if all(r.error for r in rep.results):
        print("logsense: error: nothing could be read on any host", file=sys.stderr)
        raise typer.Exit(3)
    incidents, stats = rep.incidents, rep.stats()
    unrec = sorted((u for r in rep.results for u in r.unrecognised), key=lambda u: -u["count"])[:20]
    zone = opts.display_tz or local_zone()
    out = open_output(output)
    try:
        if fmt == AnalyzeFormat.json:
            json.dump({"fleet": rep.summary(), "incidents": incidents, "stats": stats, "unrecognised_errors": unrec},
                      out, indent=2)
            out.write("\n")
        elif fmt == AnalyzeFormat.jsonl:
            report.write_jsonl(out, incidents)
        elif fmt == AnalyzeFormat.markdown:
            out.write(report.fleet_summary_md(*fleet.summary_rows(rep, lang), lang))
            report.write_markdown(out, incidents, stats, unrec, tz=zone, lang=lang)
        elif fmt == AnalyzeFormat.html:
            report.write_html(out, incidents, stats, unrec, None, tz=zone, lang=lang,
                              preface=report.fleet_summary_html(*fleet.summary_rows(rep, lang), lang))
        elif fmt == AnalyzeFormat.text:
            fleet.write_summary(out, rep, lang)
            report.write_text(out, incidents, stats, unrec, color=None if not output else False, tz=zone, lang=lang)
        elif fmt == AnalyzeFormat.record:
            from logsense.record import write_records
            write_records(out, incidents, opts.catalogue_dirs, lang)
    finally:
        if output:
            out.close()
    if fail_on is not None and any(SEVERITY_RANK[i["severity"]] >= SEVERITY_RANK[fail_on] for i in incidents):
        raise typer.Exit(1)


@app.command()
def demo(fmt: AnalyzeFormatOpt = AnalyzeFormat.text, tz: TzOpt = "UTC", lang: LangOpt = None) -> None:
    """Analyze the bundled sample outage."""
    lang = pick_lang(lang)
    if not SAMPLE.is_dir():
        raise InputError(f"the bundled sample is missing: {SAMPLE}")
    opts = make_options(None, None, tz, None, None, None)
    run_analysis([str(SAMPLE)], opts, fmt, None, 120.0, None, False, lang=lang)


def site_catalogue(catalogue: list[str] | None, config: str | None) -> Catalogue:
    """The catalogue as analysis uses it: built-in, the settings' folders, --catalogue, less `disable`."""
    opts = make_options(None, None, None, None, None, catalogue, config=config)
    return load_catalogue(opts.catalogue_dirs, opts.disable)


@app.command()
def vms(paths: PathsArg = None, fmt: VmsFormatOpt = VmsFormat.text, output: OutputOpt = None,
        since: SinceOpt = None, until: UntilOpt = None, tz: TzOpt = None, year: YearOpt = None,
        host: HostOpt = None, catalogue: CatOpt = None, reboot_grace: GraceOpt = None, lang: LangOpt = None,
        jobs: JobsOpt = None) -> None:
    """Each VM's life from the logs: state at the end, last start and stop with reasons, crashes,
    failed starts, downtime (json: every running interval and the host's boots and shutdowns)."""
    from logsense import vms_report
    from logsense.batch import pairs
    from logsense.lifecycle import timeline

    lang = pick_lang(lang)
    opts = make_options(since, until, tz, year, host, catalogue)
    opts.jobs = check_jobs(jobs)
    reboot_grace = reboot_grace_of(reboot_grace)
    with file_progress() as on_file:
        reader = Reader(opts, warn=stderr_warn, on_file=on_file)
        evs = reader.events(paths or [])
    check_read(reader.run)
    tl = timeline(evs, reboot_grace)
    out = open_output(output)
    try:
        if fmt == VmsFormat.json:
            vms_report.write_json(out, tl)
        elif fmt == VmsFormat.markdown:
            vms_report.write_markdown(out, tl, lang)
        elif fmt == VmsFormat.html:
            vms_report.write_html(out, tl, [d for _, d in pairs(evs, grace=reboot_grace, lang=lang)], lang)
        else:
            vms_report.write_text(out, tl, lang)
    finally:
        if output:
            out.close()


@catalogue_app.command("list")
def catalogue_list(catalogue: CatOpt = None, config: ConfigOpt = None) -> None:
    """Every pattern: id, category, severity, title."""
    cat = site_catalogue(catalogue, config)
    for p in sorted(cat.patterns, key=lambda p: p.id):
        print(f"{p.id:55} {p.category:12} {p.severity:8} {p.title}")


@catalogue_app.command("show")
def catalogue_show(pattern_id: Annotated[str, typer.Argument(metavar="ID", help="A pattern id.")],
                   catalogue: CatOpt = None, config: ConfigOpt = None) -> None:
    """Everything about one pattern, examples included."""
    cat = site_catalogue(catalogue, config)
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
                    timing: Annotated[bool, typer.Option("--timing/--no-timing",
                                                         help="Time each regex on adversarial lines.")] = True,
                    config: ConfigOpt = None) -> None:
    """Validate every pattern; exit non-zero with one line per problem."""
    from logsense.catalogue_check import check_catalogue, without_literal
    from logsense.record import record_problems

    opts = make_options(None, None, None, None, None, catalogue, config=config)
    cat = load_catalogue(opts.catalogue_dirs, opts.disable, vet_site=False)  # every problem listed, none refused
    site = {f.name for f in pattern_files(opts.catalogue_dirs) if f.parent != BUILTIN_DIR}  # may stay English
    problems = check_catalogue(cat, timing=timing, untranslated_ok=site) + record_problems(opts.catalogue_dirs)
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
def catalogue_test(path: Annotated[str, typer.Argument(metavar="PATH",
                                                      help="A log file, folder or archive; - is standard input.")],
                   catalogue: CatOpt = None, tz: TzOpt = None, year: YearOpt = None,
                   config: ConfigOpt = None) -> None:
    """Which lines of a log match which pattern (for people writing patterns): FILE:LINE  ID  FIELDS."""
    opts = make_options(None, None, tz, year, None, catalogue, all_lines=True, config=config)
    reader = Reader(opts, warn=stderr_warn)
    evs = reader.events([path])
    check_read(reader.run)
    for ev in evs:
        tag = ev.pattern_id or ("(unrecognised error)" if ev.shape else "")
        if tag:
            fields = " ".join(f"{k}={safe(v)}" for k, v in ev.fields.items())
            print(f"{safe(where(ev.record))}  {tag}  {fields}")
    s = reader.run.stats
    print(f"{int(s['lines_read'])} lines, {int(s['events_matched'])} matched")


class Emit(StrEnum):
    incidents = "incidents"
    events = "events"


class WatchFormat(StrEnum):
    json = "json"
    text = "text"


@app.command()
def watch(paths: Annotated[list[str] | None, typer.Argument(
              metavar="PATH", show_default=False,
              help="Files, directories (every log file under them, also later ones) or globs. "
                   "Default: /var/log/libvirt, /var/log/messages or /var/log/syslog, and the journal.")] = None,
          config: ConfigOpt = None,
          state_dir: Annotated[str | None, typer.Option("--state-dir", metavar="DIR", help="Where positions are saved.")
                               ] = None,
          no_journal: Annotated[bool, typer.Option("--no-journal", help="Do not follow the journal.")] = False,
          journal_dir: Annotated[str | None, typer.Option("--journal-dir", metavar="DIR",
                                                          help="Follow this journal directory.")
                                 ] = None,
          from_start: Annotated[bool, typer.Option("--from-start", help="Read files present at the first start "
                                                   "from their beginning.")] = False,
          window: Annotated[float | None, typer.Option("--window", metavar="SECONDS",
                                                       help="Seconds of quiet that close an incident.")] = None,
          sink: Annotated[list[str] | None, typer.Option(
              "--sink", metavar="SINK",
              help="stdout | journal | file:PATH | command:CMD ARGS | webhook:URL | alertmanager:URL | "
                   "email:ADDRESS (repeatable; replaces the config's sinks; filters: config file).")
                          ] = None,
          emit: Annotated[Emit | None, typer.Option("--emit", help="Emit incidents (default) or every event.")
                          ] = None,
          all_lines: Annotated[bool, typer.Option("--all", hidden=True, help="With --emit events: every line.")
                               ] = False,
          settle: Annotated[float | None, typer.Option(
              "--settle", metavar="SECONDS",
              help="Seconds a new event waits before it is correlated (default 1.5), so an incident opens with "
                   "the cause read just after its first symptom.")] = None,
          metrics: Annotated[str | None, typer.Option(
              "--metrics", metavar="HOST:PORT", help="Serve Prometheus metrics (/metrics); off by default.")
                             ] = None,
          metrics_textfile: Annotated[str | None, typer.Option(
              "--metrics-textfile", metavar="PATH", help="Write the metrics to this node-exporter textfile "
                                                         "(atomically).")] = None,
          tz: Annotated[str | None, typer.Option("--tz", metavar="ZONE",
                                                 help="Zone of syslog lines that carry none.")] = None,
          host: Annotated[str | None, typer.Option(metavar="NAME", help="Host name for sources that carry none.")
                          ] = None,
          catalogue: CatOpt = None,
          reboot_grace: GraceOpt = None,
          fmt: Annotated[WatchFormat | None, typer.Option(
              "--format", "-f", help="Of the stdout sink: json, one object a line (default), or text, one line "
                                     "a change for a person watching a terminal.")] = None,
          lang: LangOpt = None) -> None:
    """The daemon: follow the logs and the journal, emit incidents as they open, change and resolve."""
    from logsense.daemon import watch as run_watch

    if lang is not None:  # else the config's `lang`, else the locale (checked with the config)
        pick_lang(lang)
    overrides = {"paths": paths or None, "state_dir": state_dir, "journal": False if no_journal else None,
                 "journal_dir": journal_dir, "from_start": True if from_start else None, "window": window,
                 "emit": emit.value if emit else None, "all_lines": True if all_lines else None, "tz": tz,
                 "host": host, "catalogue": catalogue or None, "metrics": metrics, "metrics_textfile": metrics_textfile,
                 "format": fmt.value if fmt else None, "settle": settle, "lang": lang,
                 "reboot_grace": reboot_grace}
    raise typer.Exit(run_watch(config, overrides, sink))


MAN_SECTIONS = [
    ("Exit status", "0 ok. 1 only with --fail-on, when an incident that severe or worse was found. "
                    "2 usage or input error (one line on stderr). 3 nothing could be read."),
    ("Files", "/etc/logsense/logsense.toml and /etc/logsense/conf.d/*.toml: settings (see the README). "
              "/etc/logsense/patterns: a site's own pattern files. /var/lib/logsense: the daemon's state."),
    ("Environment", "LOGSENSE_CONFIG: the config file instead of /etc/logsense/logsense.toml. "
                    "LOGSENSE_PREFILTER: hyperscan, aho or none. TZ: the zone times print in. "
                    "LOGSENSE_DEBUG: show a traceback on an internal error."),
    ("Examples", "logsense analyze /srv/outage/var/log\n\n"
                 "journalctl -o json --since '1 hour ago' | logsense analyze -\n\n"
                 "logsense analyze --since yesterday --min-severity major --format markdown sos.tar.xz"),
]


@app.command("man", hidden=True)
def man() -> None:
    """Print the manual page logsense(1), made from this help: logsense man > logsense.1"""
    from logsense.manpage import manpage

    sys.stdout.write(manpage(typer.main.get_command(app), __version__, MAN_SECTIONS))


@app.command("contrib")
def contrib(name: Annotated[str | None, typer.Argument(metavar="FILE", show_default=False,
                                                       help="logsense.service or logsense.toml.")] = None) -> None:
    """Print a file shipped for installing the daemon (the systemd unit, the example config);
    without FILE, list them."""
    files = sorted(p.name for p in CONTRIB.iterdir() if p.is_file() and not p.name.startswith(("_", ".")))
    if name is None:
        print("\n".join(files))
        return
    if name not in files:
        raise InputError(f"no such file: {name} (one of: {', '.join(files)})")
    sys.stdout.write((CONTRIB / name).read_text(encoding="utf-8"))


def usage_error(exc: Exception) -> str:
    """Click's four-line usage error as one line, with where to look for help."""
    ctx = getattr(exc, "ctx", None)
    where = f"{ctx.command_path} --help" if ctx is not None else "logsense --help"
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    message = " ".join(message.replace("Value error, ", "").split())  # pydantic's prefix says nothing
    return f"logsense: error: {message} (see '{where}')"


def main() -> None:
    """Entry point: every failure is one line on stderr, never a traceback."""
    try:
        rc = app(standalone_mode=False, prog_name="logsense")
        sys.exit(rc if isinstance(rc, int) else 0)
    except NothingRead as exc:
        print(f"logsense: error: {exc}", file=sys.stderr)
        sys.exit(3)
    except (InputError, CatalogueError) as exc:
        for line in str(exc).splitlines() or ["error"]:
            print(f"logsense: error: {safe(line)}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)
    except Exception as exc:  # the promise is no traceback reaching a user
        if type(exc).__name__ == "NoArgsIsHelpError":  # `logsense` alone: the help, as before
            exc.show()
            sys.exit(2)
        if callable(getattr(exc, "show", None)) and hasattr(exc, "exit_code"):  # typer's usage errors
            print(usage_error(exc), file=sys.stderr)
            sys.exit(exc.exit_code or 2)
        if os.environ.get("LOGSENSE_DEBUG"):
            raise
        print(f"logsense: internal error: {type(exc).__name__}: {exc} (LOGSENSE_DEBUG=1 shows more)",
              file=sys.stderr)
        sys.exit(2)
