"""logsense: log analysis and error correlation for KVM hosts.

In Jupyter (logsense/frame.py; pandas is imported on first use, matplotlib only by plot):

    import logsense
    ev = logsense.events(logsense.SAMPLE)     # pandas.DataFrame, one row per event
    inc = logsense.incidents(ev)              # one row per incident, rendered as in the HTML report
    runs = logsense.lifecycle(ev)             # every VM's running intervals, how each began and ended
    logsense.plot.timeline(ev, inc)
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

__version__ = "0.1.0"


def bundled(packed: str, source: str) -> Path:
    """A data folder shipped with logsense: packed into the package in a wheel (pyproject.toml maps
    it there), at `source` under the top of a checkout otherwise."""
    here = Path(__file__).resolve().parent
    inside = here / packed
    return inside if inside.is_dir() else here.parent / source


SAMPLE = bundled("sample_outage", "fixtures/sample-outage")
"""The bundled sample outage (`logsense demo` analyzes it)."""
CONTRIB = bundled("contrib", "contrib")
"""The systemd unit and the example config."""

_FRAME_API = ("events", "incidents", "evidence", "cooccurrence", "expand_fields", "events_frame",
              "frame_from_dicts", "read_events_parquet", "write_events_parquet", "read_events_jsonl",
              "EventFrame", "IncidentFrame", "lifecycle", "read_fleet")
__all__ = ["SAMPLE", "CONTRIB", "__version__", "plot", *_FRAME_API]


def __getattr__(name: str) -> Any:
    # lazily, so that the command line and the daemon never pay for importing pandas
    if name in _FRAME_API:
        return getattr(importlib.import_module("logsense.frame"), name)
    if name == "plot":
        return importlib.import_module("logsense.plot")
    raise AttributeError(f"module 'logsense' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
