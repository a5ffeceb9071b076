"""A fleet: each host's archive analysed as one task on Dask, then a small correlation over
the hosts' incidents that finds one cause on several hosts (fleet incidents).

A host is a folder, sosreport or tarball; its task runs exactly what `logsense analyze` runs on
it alone and returns plain dicts (incidents as in CONTRACT.md), so a worker anywhere on the
network can run it. The second step only reads those dicts: the same root cause (same pattern,
and the same shared resource — NFS server, pool, network, version — when the line names one) on
two or more hosts with first signs within a window becomes one fleet incident naming the hosts
and their VMs. Different causes, or the same cause far apart in time, are never merged.
"""

from __future__ import annotations

import bisect
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from logsense import batch
from logsense.correlator import stable_id
from logsense.i18n import t
from logsense.model import SEVERITY_RANK
from logsense.pipeline import InputError, Options, Reader

# fields naming a resource several hosts share: when the root line names one, it must be the same
SHARED_FIELDS = ("server", "pool", "mount", "network", "kernel", "libvirt_version", "qemu_version", "version")
SHARED_CAUSES = ("storage", "disk_image", "network", "memory")  # categories with their own fleet.cause.* text


@dataclass
class HostResult:
    """One host's analysis, as plain values (it travels from a Dask worker)."""

    path: str
    host: str
    incidents: list[dict[str, Any]]
    stats: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    unrecognised: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None  # the one-line reason nothing could be read


def analyze_host(path: str, opts: Options, window: float, lang: str = "en") -> HostResult:
    """What `logsense analyze PATH` finds, for one host (run in a Dask worker)."""
    from logsense import report

    reader = Reader(opts, _catalogue(tuple(opts.catalogue_dirs)))
    try:
        evs = reader.events([path])
    except InputError as exc:
        return HostResult(path, Path(path).name, [], dict(reader.run.stats), list(reader.run.warnings), error=str(exc))
    incidents = [d for _, d in batch.pairs(evs, gap=window, lang=lang)]  # as `analyze` reports them: reboots, downtime
    hosts = [i["host"] for i in incidents if i["host"]] or [e.record.host for e in evs if e.record.host]
    name = max(set(hosts), key=hosts.count) if hosts else host_label(path)
    stats = dict(reader.run.stats)
    stats["incidents"] = len(incidents)
    return HostResult(path, name, incidents, stats, list(reader.run.warnings), report.unrecognised_summary(evs))


_CATALOGUES: dict[tuple[str, ...], Any] = {}


def _catalogue(dirs: tuple[str, ...]) -> Any:
    """The catalogue, loaded (and its scanner compiled) once per worker process, not per host."""
    from logsense.catalogue import load_catalogue

    if dirs not in _CATALOGUES:
        _CATALOGUES[dirs] = load_catalogue(list(dirs))
    return _CATALOGUES[dirs]


def host_label(path: str) -> str:
    """A host's name when its logs carry none: its folder or archive name without suffixes."""
    name = Path(path.rstrip("/")).name
    for suffix in (".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tar"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def run_tasks(paths: list[str], opts: Options, window: float, scheduler: str | None = None,
              workers: int | None = None, on_done: Callable[[HostResult], None] | None = None,
              lang: str = "en") -> list[HostResult]:
    """Every host as one task on Dask: a LocalCluster of worker processes (one per core unless
    `workers`) or the cluster whose scheduler listens at `scheduler` (tcp://HOST:8786)."""
    from dask.distributed import Client, LocalCluster, as_completed

    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise InputError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
        cluster = None
    else:
        cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=40)
        client = Client(cluster)
    try:
        futures = client.map(analyze_host, paths, opts=opts, window=window, lang=lang, pure=False)
        by_path: dict[str, HostResult] = {}
        for fut in as_completed(futures):
            res = fut.result()
            by_path[res.path] = res
            if on_done is not None:
                on_done(res)
        return [by_path[p] for p in paths]
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# -- fleet incidents ---------------------------------------------------------------------------
@dataclass
class _Member:
    host: str
    incident: dict[str, Any]
    cause: dict[str, Any]  # the evidence event (role cause) the hosts share


def _signatures(inc: dict[str, Any]) -> dict[tuple, dict[str, Any]]:
    """The causes an incident holds (its root or a cause among its evidence — another failure
    may have opened the host's window first), each as what must be equal for several hosts to
    share it: the pattern, and the shared resource when the line names one."""
    out: dict[tuple, dict[str, Any]] = {}
    for ev in inc.get("evidence", []):
        if ev.get("role") != "cause" or not ev.get("pattern"):
            continue
        fields = ev.get("fields") or {}
        out.setdefault((ev["pattern"], tuple((k, fields[k]) for k in SHARED_FIELDS if fields.get(k))), ev)
    return out


def fleet_incidents(results: list[HostResult], window: float, cat: Any = None, lang: str = "en"
                    ) -> list[dict[str, Any]]:
    """One cause on two or more hosts, each host's line within `window` seconds of the previous
    host's — closer together than the cause's own rate would chain them by chance — as
    CONTRACT.md incidents with scope `fleet` and `hosts`."""
    by_sig: dict[tuple, list[_Member]] = {}
    for res in results:
        for inc in res.incidents:
            for sig, ev in _signatures(inc).items():
                by_sig.setdefault(sig, []).append(_Member(res.host, inc, ev))
    every = [datetime.fromisoformat(m.cause["ts"]).timestamp() for ms in by_sig.values() for m in ms]
    span = max(max(every) - min(every), window) if every else window  # the time the fleet's logs cover
    candidates: list[tuple[tuple, list[_Member], float]] = []  # signature, group, chains like it by chance
    for sig, members in by_sig.items():
        members.sort(key=lambda m: m.cause["ts"])
        stamps = [datetime.fromisoformat(m.cause["ts"]).timestamp() for m in members]
        start = 0
        for k in range(1, len(members) + 1):
            if k < len(members) and stamps[k] - stamps[k - 1] <= window:
                continue
            group = members[start:k]
            if (hosts := len({g.host for g in group})) >= 2:
                candidates.append((sig, group, _chance_chains(stamps, start, k, hosts, span)))
            start = k
    # every group tested is a chance to be fooled: the level is shared among them (Bonferroni)
    alpha = 0.05 / max(len(candidates), 1)
    out = [_fleet_incident(sig, group, cat, lang) for sig, group, chance in candidates if chance < alpha]
    return sorted(out, key=lambda i: (-SEVERITY_RANK[i["severity"]], i["first_seen"], i["id"]))


NEIGHBOURHOOD = 900.0  # seconds either side of a group in which its cause's local rate is measured
MIN_GAP = 1.0  # seconds: stamps of different hosts closer than this are as close as clocks tell


def _chance_chains(stamps: list[float], start: int, end: int, hosts: int, span: float) -> float:
    """How many chains like the group `stamps[start:end]` (sorted) the cause would make by chance:
    `hosts` hosts each within the group's largest gap of the previous. Occurrences of a cause at
    rate r are a Poisson process, so a gap is at most g with p = 1 - exp(-r g), and each of the
    cause's occurrences starts such a chain with p^(hosts-1). The rate leaves the group out and is
    the higher of the whole fleet's and that within NEIGHBOURHOOD of the group: a cause's rate
    changes over a day (every VM started in one morning hour)."""
    size = end - start
    others = len(stamps) - size
    lo, hi = stamps[start] - NEIGHBOURHOOD, stamps[end - 1] + NEIGHBOURHOOD
    near = bisect.bisect_right(stamps, hi) - bisect.bisect_left(stamps, lo)
    rate = max(others / span, near / (hi - lo))
    gap = max([stamps[i + 1] - stamps[i] for i in range(start, end - 1)] + [MIN_GAP])
    p = 1 - math.exp(-rate * gap)
    return len(stamps) * p ** (hosts - 1)


def _fleet_incident(sig: tuple, group: list[_Member], cat: Any, lang: str = "en") -> dict[str, Any]:
    from logsense.catalogue import render

    pattern_id, shared = sig
    p = cat.by_id.get(pattern_id) if cat is not None else None
    hosts = sorted({m.host for m in group})
    vms_by_host: dict[str, list[str]] = {}
    for m in group:
        vms_by_host[m.host] = sorted(set(vms_by_host.get(m.host, [])) | set(m.incident["affected_vms"]))
    first = min(m.cause["ts"] for m in group)
    last = max(m.incident["last_seen"] for m in group)
    recovered = [m.incident["recovered_at"] for m in group]
    category = (p.category if p is not None else None) or group[0].cause.get("category") or "host"
    cause_title = p.text("title", lang) if p is not None else pattern_id
    what = f" ({', '.join(f'{k} {v}' for k, v in shared)})" if shared else ""
    n_vms = sum(len(v) for v in vms_by_host.values())
    hit = "; ".join(f"{h}: {', '.join(v) if v else t('fleet.no_vm', lang)}" for h, v in sorted(vms_by_host.items()))
    shared_cause = t(f"fleet.cause.{category if category in SHARED_CAUSES else 'rollout'}", lang)
    explanation = t("fleet.explanation", lang, cause=cause_title, what=what, n=len(hosts),
                    span=_span(first, max(m.cause["ts"] for m in group), lang), shared=shared_cause, hit=hit)
    values = {**group[0].cause.get("fields", {}), "vm": ""}
    remediation = [t("fleet.check_first", lang, shared=shared_cause)]
    diagnostics: list[str] = []
    if p is not None:
        remediation += [render(r, values) for r in p.text("remediation", lang)]
        diagnostics += [render(d, values) for d in p.diagnostics]
    return {
        "id": stable_id("fleet", pattern_id, repr(shared), first, *hosts),
        "host": None,
        "scope": "fleet",
        "hosts": hosts,
        "vm": None,
        "affected_vms": sorted({vm for v in vms_by_host.values() for vm in v}),
        "vms_by_host": vms_by_host,
        "category": category,
        "root_cause": pattern_id,
        "title": t("fleet.title", lang, n=len(hosts), cause=cause_title, what=what)
        + (t("fleet.affects", lang, n=n_vms) if n_vms else ""),
        "explanation": explanation,
        "severity": max((m.incident["severity"] for m in group), key=lambda s: SEVERITY_RANK[s]),
        "first_seen": first,
        "last_seen": last,
        "recovered_at": max(recovered) if all(recovered) else None,
        "evidence": [{**m.cause, "host": m.host} for m in group][:50],
        "remediation": remediation,
        "diagnostics": diagnostics,
        "status": "resolved",
        "version": 1,
        "occurrences": len(group),
        "incidents": sorted({m.incident["id"] for m in group}),
    }


def _span(first: str, last: str, lang: str = "en") -> str:
    secs = (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()
    return t("fleet.span_s", lang, n=f"{secs:.0f}") if secs < 120 else t("fleet.span_min", lang, n=f"{secs / 60:.0f}")


# -- the report --------------------------------------------------------------------------------
@dataclass
class FleetReport:
    """Everything `analyze --fleet` writes: fleet incidents first, then every host's own."""

    results: list[HostResult]
    fleet: list[dict[str, Any]]

    @property
    def incidents(self) -> list[dict[str, Any]]:
        hosts = sorted((i for r in self.results for i in r.incidents),
                       key=lambda i: (-SEVERITY_RANK[i["severity"]], i["first_seen"], i["id"]))
        return [*self.fleet, *hosts]

    def stats(self) -> dict[str, float]:
        """The hosts' numeric stats summed (their lists of sources read stay per host)."""
        total: dict[str, float] = {}
        for r in self.results:
            for k, v in r.stats.items():
                if isinstance(v, int | float):
                    total[k] = round(total.get(k, 0) + v, 3)
        total["hosts"] = len(self.results)
        total["fleet_incidents"] = len(self.fleet)
        total["incidents"] = len(self.incidents)
        return total

    def summary(self) -> dict[str, Any]:
        """The `fleet` object of the JSON report."""
        return {
            "hosts": [{"host": r.host, "path": r.path, "incidents": len(r.incidents),
                       "lines_read": r.stats.get("lines_read", 0),
                       "worst": max((i["severity"] for i in r.incidents), key=lambda s: SEVERITY_RANK[s],
                                    default=None), **({"error": r.error} if r.error else {})}
                      for r in self.results],
            "fleet_incidents": [{"id": i["id"], "title": i["title"], "hosts": i["hosts"]} for i in self.fleet],
        }


def analyze_fleet(paths: list[str], opts: Options, window: float, scheduler: str | None = None,
                  workers: int | None = None, lang: str = "en") -> FleetReport:
    from logsense.catalogue import load_catalogue

    if len(set(paths)) != len(paths):
        raise InputError("--fleet: a host path is given twice")
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise InputError(f"--fleet: {missing[0]}: no such file or directory")
    results = run_tasks(paths, opts, window, scheduler, workers, lang=lang)
    return FleetReport(results, fleet_incidents(results, window, load_catalogue(opts.catalogue_dirs), lang))


def summary_rows(rep: FleetReport, lang: str = "en") -> tuple[str, list[tuple[str, str, str, str, str]],
                                                              list[tuple[str, str, str]]]:
    """The fleet at a glance, in words, for every report format: the heading, each fleet incident
    (id, severity, the severity's word, title, hosts) and each host (name, state, path)."""
    from logsense.i18n import word

    s = rep.summary()
    heading = t("fleet.summary", lang, hosts=len(s["hosts"]), n=len(rep.fleet))
    shared = [(inc["id"], inc["severity"], word("severity", inc["severity"], lang), inc["title"],
               t("fleet.hosts", lang, hosts=", ".join(inc["hosts"]))) for inc in rep.fleet]
    hosts = [(h["host"], t("fleet.host_error", lang, error=h["error"]) if "error" in h else t(
              "fleet.host_state", lang, n=h["incidents"], worst=word("severity", h["worst"], lang)), h["path"])
             for h in s["hosts"]]
    return heading, shared, hosts


def write_summary(out: TextIO, rep: FleetReport, lang: str = "en") -> None:
    """The fleet at a glance, before the incidents (text report)."""
    from logsense.text import safe

    heading, shared, hosts = summary_rows(rep, lang)
    out.write(heading + "\n")
    for _, _, severity, title, names in shared:
        out.write(f"  [{severity}] {safe(title)}\n    {safe(names)}\n")
    for host, state, path in hosts:
        out.write(f"  {safe(host):24} {safe(state)}  ({safe(path)})\n")
    out.write("\n")


def events(paths: list[str], **kwargs: Any):
    """A fleet's events as one pandas DataFrame (`logsense.read_fleet`, which also gives a dask
    DataFrame for a fleet too large for memory)."""
    from logsense.frame import read_fleet

    return read_fleet(paths, dask=False, **kwargs)
