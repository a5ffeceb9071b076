"""Pictures of the event and incident frames (logsense/frame.py), with matplotlib.

matplotlib is imported by the functions, not by this module, so `import logsense` stays cheap.
Each function draws on a new Figure (or on `ax`) and returns the Figure, to show in a notebook
or `fig.savefig("timeline.png")`. The colours are the HTML report's (report.CATEGORY_COLOURS).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from logsense.report import CATEGORY_COLOURS

if TYPE_CHECKING:
    import pandas as pd

HOST_ROW = "(host)"  # the row of events that name no VM
UNRECOGNISED = "unrecognised"
SHADE = "#f6e3a1"
RUNNING = "#2ca02c"  # a VM's running interval (logsense.lifecycle); a failed start is FAILED_START
FAILED_START = "#d62728"


def _show_in_notebooks() -> None:
    """Let IPython display the Figures we return. We make them without pyplot (no global
    state, no figure shown twice), so its inline backend has not registered a format for them;
    register PNG unless the user already chose one."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or not hasattr(shell, "display_formatter"):
        return
    from matplotlib.figure import Figure

    formatters = shell.display_formatter.formatters
    for mime in ("image/png", "image/svg+xml", "image/jpeg", "application/pdf"):
        try:
            formatters[mime].lookup_by_type(Figure)
            return
        except (KeyError, TypeError):
            continue
    from IPython.core.pylabtools import select_figure_formats

    select_figure_formats(shell, {"png"})


def _axes(ax: Any, width: float, height: float) -> tuple[Any, Any]:
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    _show_in_notebooks()
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _row_label(host: Any, vm: Any, many_hosts: bool) -> str:
    name = vm if isinstance(vm, str) else HOST_ROW
    return f"{host} {name}" if many_hosts and isinstance(host, str) else name


def timeline(events_df: pd.DataFrame, incidents_df: pd.DataFrame | None = None, ax: Any = None,
             runs: pd.DataFrame | None | bool = None) -> Any:
    """Events per VM over time (one row per VM, a host's VM-less events on its own row), each a
    dot coloured by category; incidents shaded over the rows of the VMs they affected; a thin
    green bar where the VM was running (`runs`: a `logsense.lifecycle` frame; by default made
    from `events_df`; False: no bars), a red one for a failed start."""
    import matplotlib.dates as mdates
    from matplotlib.patches import Patch

    ev = events_df[events_df["role"].notna()]  # classified or unrecognised; not --all's plain lines
    many_hosts = ev["host"].nunique() > 1
    labels = [_row_label(h, v, many_hosts) for h, v in zip(ev["host"], ev["vm"], strict=True)]
    rows = sorted(set(labels), key=lambda r: (r.endswith(HOST_ROW), r))
    fig, ax = _axes(ax, 11, 1.2 + 0.45 * max(len(rows), 1))
    if ev.empty:
        ax.text(0.5, 0.5, "no events", ha="center", va="center", transform=ax.transAxes)
        return fig
    y_of = {r: i for i, r in enumerate(rows)}
    x = mdates.date2num(ev["ts"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy())
    y = [y_of[r] for r in labels]
    span = max(x.max() - x.min(), 1 / 86400)
    if incidents_df is not None:
        for inc in incidents_df.itertuples(index=False):
            a, b = mdates.date2num([inc.first_seen.tz_convert("UTC").tz_localize(None),
                                    inc.last_seen.tz_convert("UTC").tz_localize(None)])
            vms = list(inc.affected_vms) or [None]
            for vm in vms:
                row = _row_label(inc.host, vm, many_hosts)
                if row in y_of:
                    ax.barh(y_of[row], max(b - a, span / 200), left=a - span / 400, height=0.8,
                            color=SHADE, alpha=0.7, zorder=1)
    if runs is None:
        from logsense.frame import lifecycle

        try:
            runs = lifecycle(events_df)
        except ValueError:  # events of patterns this catalogue lacks: the dots without the bars
            runs = False
    bars = 0
    if runs is not False and runs is not True and len(runs):
        bars = _running_bars(ax, runs, y_of, many_hosts, x.min(), x.max(), span)
    cats = [c if isinstance(c, str) else None for c in ev["category"].astype(object)]
    ax.scatter(x, y, c=[CATEGORY_COLOURS.get(c, CATEGORY_COLOURS[None]) for c in cats], s=28,
               edgecolors="black", linewidths=0.3, zorder=2)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.invert_yaxis()
    ax.set_xlim(x.min() - span * 0.03, x.max() + span * 0.03)
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("time (UTC)")
    ax.grid(axis="x", alpha=0.3)
    seen = list(dict.fromkeys(cats))
    handles = [Patch(color=CATEGORY_COLOURS.get(c, CATEGORY_COLOURS[None]), label=c or UNRECOGNISED) for c in seen]
    if incidents_df is not None and len(incidents_df):
        handles.append(Patch(color=SHADE, alpha=0.7, label="incident"))
    if bars:
        handles.append(Patch(color=RUNNING, alpha=0.6, label="running"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small", frameon=False)
    ax.set_title("events per VM")
    return fig


def _running_bars(ax: Any, runs: pd.DataFrame, y_of: dict[str, int], many_hosts: bool, lo: float, hi: float,
                  span: float) -> int:
    """The runs as thin bars on their VMs' rows (open ends stop at the first or last event);
    how many were drawn."""
    import matplotlib.dates as mdates
    import pandas as pd

    def num(ts: Any, default: float) -> float:
        return default if pd.isna(ts) else float(mdates.date2num(ts.tz_convert("UTC").tz_localize(None)))

    drawn = 0
    for r in runs.itertuples(index=False):
        row = _row_label(r.host, r.vm, many_hosts)
        if row not in y_of:
            continue
        a, b = num(r.start, lo), num(r.end, hi)
        colour = FAILED_START if r.end_reason == "failed" else RUNNING
        ax.barh(y_of[row], max(b - a, span / 300), left=a, height=0.25, color=colour, alpha=0.6, zorder=1.5)
        drawn += 1
    return drawn


def heatmap(cooc_df: pd.DataFrame, value: str = "lift", ax: Any = None, annotate: bool | None = None) -> Any:
    """The co-occurrence table (frame.cooccurrence) as a symmetric matrix of `value` (lift,
    count, support); cells show the number of windows the pair shared."""
    import numpy as np

    items = sorted(set(cooc_df["a"]) | set(cooc_df["b"]))
    n = len(items)
    label = 0.07 * max((len(i) for i in items), default=0)  # inches the longest tick label takes
    fig, ax = _axes(ax, 2.5 + 0.4 * max(n, 1) + label, 1.2 + 0.4 * max(n, 1) + label)
    if not n:
        ax.text(0.5, 0.5, "no co-occurring pairs", ha="center", va="center", transform=ax.transAxes)
        return fig
    pos = {item: i for i, item in enumerate(items)}
    grid = np.full((n, n), np.nan)
    counts = np.zeros((n, n), dtype=int)
    for a, b, v, c in zip(cooc_df["a"], cooc_df["b"], cooc_df[value], cooc_df["count"], strict=True):
        i, j = pos[a], pos[b]
        grid[i, j] = grid[j, i] = v
        counts[i, j] = counts[j, i] = c
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", aspect="equal")
    ax.set_facecolor("#f4f4f4")
    ax.set_xticks(range(n), items, rotation=60, ha="right", rotation_mode="anchor", fontsize="small")
    ax.set_yticks(range(n), items, fontsize="small")
    fig.colorbar(image, ax=ax, label=value, shrink=0.8)
    if annotate if annotate is not None else n <= 25:
        for i in range(n):
            for j in range(n):
                if counts[i, j]:
                    bright = image.norm(grid[i, j]) > 0.6  # viridis turns yellow: dark text there
                    ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize="x-small",
                            color="black" if bright else "white")
    ax.set_title(f"co-occurrence ({value}; numbers: shared windows)")
    return fig
