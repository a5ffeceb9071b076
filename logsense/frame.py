"""Events and incidents as pandas DataFrames: the `import logsense` end of the pipeline.

    >>> import logsense
    >>> ev = logsense.events(logsense.SAMPLE, tz="UTC")    # one row per event
    >>> inc = logsense.incidents(ev)                       # one row per incident
    >>> logsense.evidence(inc, ev)                         # incident × event, long

The frames are built from the very objects the command line prints: `events()` runs
`pipeline.Reader` and turns each `Event.to_dict()` (the CONTRACT.md event object) into a row,
so `events()` and `logsense events --format jsonl` agree row for row, and `incidents()`
rebuilds those events and runs `correlator.correlate`, as `logsense analyze` does.

Event columns (CONTRACT.md), with real dtypes:

    ts        datetime64[ns, UTC]
    host, vm, pattern                  category (the values seen)
    source, category, role             category (the fixed vocabularies of model.py)
    severity                           ordered category: minor < major < critical
    line                               Int64 (nullable)
    file, cursor, message              str
    fields                             dicts of the values the pattern extracted

Parquet (`EventFrame.to_parquet`, `logsense events --format parquet -o FILE`): every column
keeps its dtype (categories, their order and unused values included), and `fields` is stored
as a Parquet MAP<string, string>, which DuckDB, Polars and Spark read as a map.
`read_events_parquet(path)` gives back the frame exactly; plain `pandas.read_parquet` gives the
same frame except that each `fields` value is a list of (key, value) pairs (`dict(x)` of it).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from logsense import batch
from logsense.catalogue import Catalogue, load_catalogue, message_shape
from logsense.correlator import DEFAULT_GAP
from logsense.lifecycle import DEFAULT_GRACE, run_rows, timeline
from logsense.model import CATEGORIES, ROLES, SEVERITIES, SOURCES, Event, Record
from logsense.pipeline import Options, Reader, parse_time, parse_zone
from logsense.spill import batched

EVENT_COLUMNS = ["ts", "host", "source", "file", "line", "cursor", "vm", "pattern", "category", "severity",
                 "role", "message", "fields"]
INCIDENT_COLUMNS = ["id", "host", "scope", "vm", "affected_vms", "category", "root_cause", "title", "explanation",
                    "severity", "first_seen", "last_seen", "recovered_at", "evidence", "remediation",
                    "diagnostics", "occurrences", "evidence_counts"]
SEVERITY_ORDER = list(reversed(SEVERITIES))  # minor < major < critical, so `>= "major"` works
TS = "datetime64[ns, UTC]"
TEXT: Any = "str" if int(pd.__version__.split(".")[0]) >= 3 else object  # pandas 3's string dtype
SEEN_COLUMNS = ("host", "vm", "pattern")  # categories: the values seen, sorted
PARQUET_BATCH = 16_384  # events a row group of `events --format parquet` holds
FLEET_IN_MEMORY = 2 << 30  # bytes of logs a fleet may have for `read_fleet` to give a pandas frame
FIELDS_TYPE = None  # pyarrow.map_(string, string), made when pyarrow is first needed

PathsLike = str | os.PathLike | Iterable[str | os.PathLike] | None
CatalogueLike = Catalogue | str | os.PathLike | Iterable[str | os.PathLike] | None


# -- dtypes ------------------------------------------------------------------------------------

def _categorical(values: list, vocabulary: Iterable[str] = (), ordered: bool = False) -> pd.Categorical:
    """A categorical over a fixed vocabulary plus any value outside it (never lost to NaN)."""
    cats = list(vocabulary)
    cats += sorted({v for v in values if v is not None} - set(cats))
    return pd.Categorical(values, categories=cats, ordered=ordered)


def _text(values: list) -> pd.Series:
    return pd.Series(values, dtype=TEXT)


def _timestamps(values: list) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True, format="ISO8601")).astype(TS)


def _py(series: pd.Series) -> list:
    """A column as Python values, None for missing."""
    return [None if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else v
            for v in series.astype(object).tolist()]


# -- events ------------------------------------------------------------------------------------

class EventFrame(pd.DataFrame):
    """A DataFrame of events: a plain DataFrame whose `to_parquet` stores `fields` as a MAP."""

    @property
    def _constructor(self):
        return EventFrame

    def to_parquet(self, path=None, *args: Any, **kwargs: Any):  # type: ignore[override]
        if args or "fields" not in self.columns or self["fields"].dtype != object:
            return pd.DataFrame(self).to_parquet(path, *args, **kwargs)
        if path is None:  # pandas' convention: the file's bytes
            import io

            buf = io.BytesIO()
            write_events_parquet(self, buf, **kwargs)
            return buf.getvalue()
        write_events_parquet(self, path, **kwargs)
        return None


def frame_from_dicts(rows: Iterable[dict[str, Any]]) -> EventFrame:
    """Event objects of CONTRACT.md (`Event.to_dict()`, a line of `--format jsonl`) as a frame."""
    rows = list(rows)
    col = {c: [r.get(c) for r in rows] for c in EVENT_COLUMNS}
    return EventFrame({
        "ts": _timestamps(col["ts"]),
        "host": _categorical(col["host"]),
        "source": _categorical(col["source"], SOURCES),
        "file": _text(col["file"]),
        "line": pd.array(col["line"], dtype="Int64"),
        "cursor": _text(col["cursor"]),
        "vm": _categorical(col["vm"]),
        "pattern": _categorical(col["pattern"]),
        "category": _categorical(col["category"], CATEGORIES),
        "severity": _categorical(col["severity"], SEVERITY_ORDER, ordered=True),
        "role": _categorical(col["role"], ROLES),
        "message": _text(col["message"]),
        "fields": pd.Series([dict(f or {}) for f in col["fields"]], dtype=object),
    })


def events_frame(evs: Iterable[Event]) -> EventFrame:
    """The pipeline's events as a frame, one row per event, in their order (index 0..n-1)."""
    return frame_from_dicts(e.to_dict() for e in evs)


def _dirs(catalogue: CatalogueLike) -> list[str]:
    if catalogue is None or isinstance(catalogue, Catalogue):
        return []
    if isinstance(catalogue, str | os.PathLike):
        return [os.fspath(catalogue)]
    return [os.fspath(d) for d in catalogue]


def _paths(paths: PathsLike) -> list[str]:
    if paths is None:
        return []
    if isinstance(paths, str | os.PathLike):
        return [os.fspath(paths)]
    return [os.fspath(p) for p in paths]


def events(paths: PathsLike, *, since: str | datetime | None = None, until: str | datetime | None = None,
           tz: str | tzinfo | None = None, year: int | None = None, host: str | None = None,
           all_lines: bool = False, catalogue: CatalogueLike = None) -> EventFrame:
    """Every event under `paths` (files, directories, archives, journals; None: the live host),
    as `logsense events` finds them. Options as on the command line: `tz` is the zone of syslog
    stamps that carry none (default: this machine's), `since`/`until` are ISO 8601 strings or
    datetimes (naive ones in `tz`), `catalogue` extra pattern directories (or a loaded Catalogue).

    `df.attrs` holds the run's `stats`, its `warnings` (also summarised as one Python warning)
    and the `catalogue` directories, which `incidents()` uses to re-link pattern ids."""
    zone = tz if isinstance(tz, tzinfo) else parse_zone(tz)
    opts = Options(since=parse_time(since, zone), until=parse_time(until, zone), tz=zone, year=year, host=host,
                   all_lines=all_lines, catalogue_dirs=_dirs(catalogue))
    reader = Reader(opts, catalogue if isinstance(catalogue, Catalogue) else None)
    df = events_frame(reader.events(_paths(paths)))
    df.attrs = {"stats": dict(reader.run.stats), "warnings": list(reader.run.warnings),
                "catalogue": opts.catalogue_dirs}
    if reader.run.warnings:
        first = reader.run.warnings[0]
        more = len(reader.run.warnings) - 1
        warnings.warn(f"logsense: {first}" + (f" (and {more} more in df.attrs['warnings'])" if more else ""),
                      stacklevel=2)
    return df


def host_events(path: str | os.PathLike, **kwargs: Any) -> EventFrame:
    """One host's events (a folder, sosreport or tarball), `host` filled from its folder or
    archive name where its logs carry none (options as `events`)."""
    from logsense.fleet import host_label

    df = events(path, **kwargs)
    df["host"] = df["host"].astype(object).where(df["host"].notna(), host_label(os.fspath(path)))
    return df


def read_fleet(paths: Iterable[str | os.PathLike], *, dask: bool | None = None,
               memory_bytes: int = FLEET_IN_MEMORY, **kwargs: Any) -> Any:
    """A fleet's events, one path (folder, sosreport or tarball) per host, as one frame with a
    `host` column: pandas when it fits, else (or with `dask=True`) a dask DataFrame with one
    partition per host, each read by a task when computed — on the cluster of the current
    `dask.distributed.Client` if there is one. "Fits": the hosts' files together are smaller
    than `memory_bytes`. Options as `events`."""
    paths = [os.fspath(p) for p in paths]
    if dask is None:
        dask = sum(_size(p) for p in paths) > memory_bytes
    if not dask:
        frames = [host_events(p, **kwargs) for p in paths]
        return pd.concat(frames, ignore_index=True) if frames else _fleet_meta()
    import dask as dk
    import dask.dataframe as dd

    parts = [dk.delayed(host_events, pure=True)(p, **kwargs) for p in paths]
    with dk.config.set({"dataframe.convert-string": False}):  # the columns' dtypes as in pandas
        return dd.from_delayed(parts, meta=_fleet_meta(), verify_meta=False)


def _fleet_meta() -> pd.DataFrame:
    """The empty fleet frame: its categories unknown, as each host has its own."""
    meta = frame_from_dicts([])
    meta["host"] = meta["host"].astype(object)
    return meta


def _size(path: str) -> int:
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())


def expand_fields(df: pd.DataFrame, prefix: str = "field_", keep: bool = False) -> pd.DataFrame:
    """The `fields` dicts spread into one column per key (`field_path`, `field_pid`, ...)."""
    wide = pd.DataFrame([f if isinstance(f, dict) else {} for f in df["fields"]], index=df.index)
    wide = wide.astype(TEXT).add_prefix(prefix) if len(wide.columns) else wide
    base = df if keep else df.drop(columns="fields")
    return base.join(wide)


def to_events(df: pd.DataFrame, catalogue: CatalogueLike = None) -> Iterator[tuple[Any, Event]]:
    """(index label, Event) for every row, pattern ids re-linked to the catalogue's patterns."""
    cat = catalogue if isinstance(catalogue, Catalogue) else load_catalogue(
        _dirs(catalogue) or df.attrs.get("catalogue", []))
    cols = {c: _py(df[c]) for c in EVENT_COLUMNS if c != "ts"}
    stamps = [t.to_pydatetime().astimezone(UTC) for t in df["ts"]]
    for i, label in enumerate(df.index):
        pid = cols["pattern"][i]
        pattern = None
        if pid is not None:
            pattern = cat.by_id.get(pid)
            if pattern is None:
                raise ValueError(f"pattern {pid!r} is not in the catalogue (pass catalogue= the directory "
                                 "the events were read with)")
        rec = Record(ts=stamps[i], source=cols["source"][i], message=cols["message"][i] or "",
                     host=cols["host"][i], file=cols["file"][i], line=cols["line"][i], cursor=cols["cursor"][i])
        role = cols["role"][i]
        # an unrecognised error-level line (pipeline.classify): no pattern, role context
        shape = message_shape(rec.message) if pid is None and role == "context" else None
        yield label, Event(rec, pattern, dict(cols["fields"][i] or {}), vm=cols["vm"][i],
                           category=cols["category"][i], severity=cols["severity"][i], role=role, shape=shape)


# -- incidents ---------------------------------------------------------------------------------

class IncidentFrame(pd.DataFrame):
    """Incidents, one a row; in a notebook each renders as in the HTML report."""

    _metadata = ["_incident_dicts"]
    _incident_dicts: dict[str, dict] = {}  # replaced per instance, never mutated
    max_rendered = 30

    @property
    def _constructor(self):
        return IncidentFrame

    def _repr_html_(self) -> str | None:
        known = self._incident_dicts
        if not set(INCIDENT_COLUMNS) <= set(self.columns) or not all(i in known for i in self["id"]):
            return super()._repr_html_()  # a selection of columns, or rows we did not make: a table
        from logsense.report import STYLE, incident_html

        ids = list(self["id"])
        parts = [f"<div class='{SCOPE}'><style>{_scoped(STYLE)}.{SCOPE}{{margin:0}}</style>",
                 f"<p><b>{len(ids)} incident(s)</b></p>"]
        parts += [incident_html(known[i]) for i in ids[:self.max_rendered]]
        if len(ids) > self.max_rendered:
            parts.append(f"<p>… {len(ids) - self.max_rendered} more (pandas.DataFrame(inc) shows the table)</p>")
        return "".join(parts) + "</div>"


SCOPE = "logsense-incidents"


def _scoped(css: str) -> str:
    """The report's style sheet confined to our block, so a notebook's other tables keep theirs."""
    rules = []
    for rule in css.replace("\n", "").split("}"):
        if "{" not in rule:
            continue
        selectors, body = rule.split("{", 1)
        if selectors.strip() == "body":
            rules.append(f".{SCOPE}{{{body}}}")
            continue
        scoped = ",".join(f".{SCOPE} {sel.strip()}" for sel in selectors.split(","))
        rules.append(f"{scoped}{{{body}}}")
    return "".join(rules)


def incidents(events_df: pd.DataFrame, window: float = DEFAULT_GAP, catalogue: CatalogueLike = None,
              reboot_grace: float = DEFAULT_GRACE) -> IncidentFrame:
    """The incidents `logsense analyze --window --reboot-grace` finds in these events (host
    reboots that left VMs down included), one row each, most severe first. `evidence` holds
    index labels of `events_df` (cause first; a repeated line is listed once, its repeats in
    `evidence_counts`), so `events_df.loc[row.evidence]` gets them."""
    order = np.argsort(events_df["ts"].to_numpy(), kind="stable")
    pairs = list(to_events(events_df.iloc[order], catalogue))
    label_of = {id(ev.record): label for label, ev in pairs}  # events may be copied, records never
    rows, dicts = [], {}
    for inc, d in batch.pairs([ev for _, ev in pairs], gap=window, grace=reboot_grace):
        dicts[d["id"]] = d
        evidence = inc.evidence_events()
        rows.append({**{c: d.get(c) for c in INCIDENT_COLUMNS},
                     "evidence": [label_of[id(e.record)] for e, _ in evidence],
                     "evidence_counts": [n for _, n in evidence]})
    col = {c: [r[c] for r in rows] for c in INCIDENT_COLUMNS}
    out = IncidentFrame({
        "id": _text(col["id"]),
        "host": _categorical(col["host"]),
        "scope": _categorical(col["scope"], ("vm", "host")),
        "vm": _categorical(col["vm"]),
        "affected_vms": pd.Series(col["affected_vms"], dtype=object),
        "category": _categorical(col["category"], CATEGORIES),
        "root_cause": _categorical(col["root_cause"]),
        "title": _text(col["title"]),
        "explanation": _text(col["explanation"]),
        "severity": _categorical(col["severity"], SEVERITY_ORDER, ordered=True),
        "first_seen": _timestamps(col["first_seen"]),
        "last_seen": _timestamps(col["last_seen"]),
        "recovered_at": _timestamps(col["recovered_at"]),
        "evidence": pd.Series(col["evidence"], dtype=object),
        "remediation": pd.Series(col["remediation"], dtype=object),
        "diagnostics": pd.Series(col["diagnostics"], dtype=object),
        "occurrences": pd.array(col["occurrences"], dtype="Int64"),
        "evidence_counts": pd.Series(col["evidence_counts"], dtype=object),
    })
    out._incident_dicts = dicts
    return out


def lifecycle(events_df: pd.DataFrame, reboot_grace: float = DEFAULT_GRACE, catalogue: CatalogueLike = None
              ) -> pd.DataFrame:
    """Every VM's running intervals, as `logsense vms --format json` lists them under `runs`: one
    row per run with `vm`, `host`, `start` (NaT: running when the logs begin), `end` (NaT: still
    running at their end), `start_reason` (manual, autostart, migrated-in, unknown) and
    `end_reason` (shutdown, destroyed, crashed, failed, migrated-out, saved, host-down, unknown,
    running)."""
    from logsense.lifecycle import END_REASONS, START_REASONS

    order = np.argsort(events_df["ts"].to_numpy(), kind="stable")
    rows = run_rows(timeline((ev for _, ev in to_events(events_df.iloc[order], catalogue)), reboot_grace))
    col = {c: [r[c] for r in rows] for c in ("vm", "host", "start", "end", "start_reason", "end_reason")}
    return pd.DataFrame({
        "vm": _categorical(col["vm"]), "host": _categorical(col["host"]),
        "start": _timestamps(col["start"]), "end": _timestamps(col["end"]),
        "start_reason": _categorical(col["start_reason"], START_REASONS),
        "end_reason": _categorical(col["end_reason"], END_REASONS),
    })


def evidence(incidents_df: pd.DataFrame, events_df: pd.DataFrame) -> pd.DataFrame:
    """The long table: one row per (incident, event of its evidence), with `rank` (0 is the root
    cause), `count` (times the line repeated), `event` (the label in events_df) and the event's
    columns."""
    ids, ranks, labels, counts = [], [], [], []
    for iid, ev_labels, ev_counts in zip(incidents_df["id"], incidents_df["evidence"],
                                         incidents_df["evidence_counts"], strict=True):
        for rank, (label, count) in enumerate(zip(ev_labels, ev_counts, strict=True)):
            ids.append(iid)
            ranks.append(rank)
            labels.append(label)
            counts.append(count)
    head = pd.DataFrame({"incident_id": _text(ids), "rank": pd.array(ranks, dtype="int64"),
                         "count": pd.array(counts, dtype="int64"), "event": labels})
    rows = pd.DataFrame(events_df.loc[labels]).reset_index(drop=True)
    return pd.concat([head, rows], axis=1)


# -- co-occurrence -----------------------------------------------------------------------------

def cooccurrence(events_df: pd.DataFrame, window: str | pd.Timedelta = "5min", by: str = "pattern",
                 per: tuple[str, ...] = ("host", "vm")) -> pd.DataFrame:
    """Which values of `by` (pattern, category, ...) occur together.

    Each `per` unit (by default a host's VM; events naming no VM form the host's own unit)
    is cut into fixed windows of `window` (aligned to the epoch); a window is a basket of the
    distinct values seen in it. For every pair a < b seen together: `count` baskets holding
    both, `support_a`/`support_b`/`support` the share of all baskets holding a, b, both, and
    `lift` = support / (support_a × support_b) (above 1: together more often than chance).
    Sorted by lift, then count."""
    cols = ["a", "b", "count", "support_a", "support_b", "support", "lift"]
    d = events_df.loc[events_df[by].notna(), [*per, "ts", by]]
    if d.empty:
        return pd.DataFrame({c: pd.Series(dtype=TEXT if c in "ab" else float) for c in cols})
    keys = pd.DataFrame({p: _py(d[p]) for p in per}, index=d.index).fillna("")
    keys["bucket"] = d["ts"].dt.floor(pd.Timedelta(window))
    keys["item"] = d[by].astype(object).astype(str)
    keys["basket"] = keys.groupby([*per, "bucket"], sort=False).ngroup()
    baskets = keys[["basket", "item"]].drop_duplicates()
    total = baskets["basket"].nunique()
    n_item = baskets.groupby("item").size()
    pairs = baskets.merge(baskets, on="basket", suffixes=("_a", "_b"))
    pairs = pairs[pairs["item_a"] < pairs["item_b"]]
    out = pairs.groupby(["item_a", "item_b"]).size().rename("count").reset_index()
    out.columns = ["a", "b", "count"]
    out["support_a"] = out["a"].map(n_item) / total
    out["support_b"] = out["b"].map(n_item) / total
    out["support"] = out["count"] / total
    out["lift"] = out["support"] / (out["support_a"] * out["support_b"])
    out = out.astype({"a": TEXT, "b": TEXT})
    return out.sort_values(["lift", "count", "a", "b"], ascending=[False, False, True, True],
                           ignore_index=True)[cols]


# -- Parquet -----------------------------------------------------------------------------------

def _fields_type():
    import pyarrow as pa

    global FIELDS_TYPE
    if FIELDS_TYPE is None:
        FIELDS_TYPE = pa.map_(pa.string(), pa.string())
    return FIELDS_TYPE


def _events_table(df: pd.DataFrame, index: bool | None = None):
    """The frame as an Arrow table, `fields` as MAP<string, string> (module docstring)."""
    import pyarrow as pa

    rest = pd.DataFrame(df).drop(columns="fields")
    table = pa.Table.from_pandas(rest, preserve_index=index)
    fields = pa.array([{str(k): None if v is None else str(v) for k, v in f.items()} if isinstance(f, dict) else None
                       for f in df["fields"]], type=_fields_type())
    return table.add_column(list(df.columns).index("fields"), pa.field("fields", _fields_type()), fields)


def write_events_parquet(df: pd.DataFrame, path: str | os.PathLike, **kwargs: Any) -> None:
    """The frame as Parquet, `fields` as MAP<string, string> (module docstring)."""
    import pyarrow.parquet as pq

    table = _events_table(df, kwargs.pop("index", None))
    pq.write_table(table, os.fspath(path) if isinstance(path, os.PathLike) else path, **kwargs)


def write_events_parquet_batches(evs: Iterable[Event], path: str | os.PathLike, batch: int = PARQUET_BATCH) -> None:
    """Events to Parquet, one row group per `batch` events, never more of them in memory
    (`logsense events --format parquet`). Each row group carries the dictionary of the values
    it holds, so `read_events_parquet` sorts the categories seen back into their order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    try:
        for rows in batched(evs, batch):
            table = _events_table(events_frame(rows), index=False)
            if writer is None:  # dictionary indices as wide as any row group needs
                schema = pa.schema([pa.field(f.name, pa.dictionary(pa.int32(), f.type.value_type, f.type.ordered))
                                    if pa.types.is_dictionary(f.type) else f for f in table.schema],
                                   metadata=table.schema.metadata)
                writer = pq.ParquetWriter(os.fspath(path), schema)
            writer.write_table(table.cast(schema))
        if writer is None:
            write_events_parquet(events_frame([]), path)
    finally:
        if writer is not None:
            writer.close()


def read_events_parquet(path: str | os.PathLike) -> EventFrame:
    """A frame written by `EventFrame.to_parquet` / `logsense events --format parquet`, exactly."""
    try:
        df = pd.read_parquet(path, to_pandas_kwargs={"maps_as_pydicts": "strict"})
    except TypeError:  # pandas before 3.0 passes no options to pyarrow
        import pyarrow.parquet as pq

        df = pq.read_table(path).to_pandas(maps_as_pydicts="strict")
    if "fields" in df.columns:
        df["fields"] = [f if isinstance(f, dict) else {} for f in df["fields"]]
    for col in SEEN_COLUMNS:  # row groups written apart list their values in the order met
        if col in df.columns and isinstance(df[col].dtype, pd.CategoricalDtype):
            df[col] = df[col].cat.reorder_categories(sorted(df[col].cat.categories))
    return EventFrame(df)


def read_events_jsonl(path: str | os.PathLike) -> EventFrame:
    """The output of `logsense events --format jsonl` as a frame."""
    import json

    with Path(path).open(encoding="utf-8") as f:
        return frame_from_dicts(json.loads(line) for line in f if line.strip())
