"""Times as `journalctl --since` takes them (systemd.time(7)), and the zone times print in.

    now, today, yesterday, tomorrow          midnight of that day in the zone
    -2h, +5min, "1 hour ago", "3 days left"  relative to now (spans may combine: "1h 30min ago")
    10:00, 10:00:30                          today at that time
    2024-03-05, 2024-03-05 10:00[:30]        ISO 8601 (also with T, fractions, an offset or Z)
    "Tue 2024-03-05 10:00 UTC", "... Europe/Paris", @1709633400
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# seconds per unit; exact spelling first ("M" is a month, "m" a minute), then lower case
UNITS: dict[str, float] = {
    "us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3,
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
    "M": 2629800, "month": 2629800, "months": 2629800,  # 30.44 days, as systemd counts
    "y": 31557600, "year": 31557600, "years": 31557600,
}
SPAN_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)")
DAYS = {"today": 0, "yesterday": -1, "tomorrow": 1}
WEEKDAY_RE = re.compile(r"^(mon|tue|wed|thu|fri|sat|sun)[a-z]*,?\s+", re.I)
OFFSET_RE = re.compile(r"\s*(Z|UTC|GMT|[+-]\d\d:?\d\d)$")
CLOCK_RE = re.compile(r"^\d{1,2}:\d\d(:\d\d(\.\d+)?)?$")
HELP = "ISO 8601, 'yesterday', '1 hour ago', '-2h', '10:00' or another form journalctl --since takes"


class TimeSpecError(ValueError):
    """Not a time this module reads."""


def local_zone() -> tzinfo:
    """The zone times print in by default: TZ, else the machine's (/etc/localtime), named when possible
    so that daylight saving time is right for every date."""
    name = os.environ.get("TZ", "").lstrip(":")
    if not name:
        try:
            target = os.readlink("/etc/localtime")
            name = target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else ""
        except OSError:
            name = ""
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return datetime.now().astimezone().tzinfo or UTC


def zone_name(zone: tzinfo) -> str:
    """`Europe/Paris`, `UTC`, or an offset like `UTC+01:00`."""
    return getattr(zone, "key", None) or str(zone)


def parse_span(text: str) -> float | None:
    """Seconds in "1h 30min", "2 hours", "90s"; None when `text` is not a span."""
    total, pos, found = 0.0, 0, False
    for m in SPAN_RE.finditer(text):
        if m.start() != pos:
            return None
        unit = UNITS.get(m.group(2)) or UNITS.get(m.group(2).lower())
        if unit is None:
            return None
        total += float(m.group(1)) * unit
        pos, found = m.end(), True
    return total if found and not text[pos:].strip() else None


def _zone_suffix(text: str) -> tuple[str, tzinfo | None]:
    """Split a trailing zone: an offset, Z, UTC, or a zone name ("Europe/Paris")."""
    if (m := OFFSET_RE.search(text)) and not CLOCK_RE.match(text):
        tag = m.group(1)
        if tag in ("Z", "UTC", "GMT"):
            return text[: m.start()], UTC
        return text, None  # a numeric offset: fromisoformat reads it
    head, _, last = text.rpartition(" ")
    if head and "/" in last:
        try:
            return head, ZoneInfo(last)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return text, None


def parse_when(text: str, zone: tzinfo, now: datetime | None = None) -> datetime:
    """An aware datetime for `text`; times without a zone are `zone`'s wall-clock time."""
    t = " ".join(text.split())
    now = (now or datetime.now(UTC)).astimezone(zone)
    low = t.lower()
    if low == "now":
        return now
    if low in DAYS:
        day = now.date() + timedelta(days=DAYS[low])
        return datetime(day.year, day.month, day.day, tzinfo=zone)
    if t.startswith("@"):
        try:
            return datetime.fromtimestamp(float(t[1:]), UTC)
        except (ValueError, OverflowError, OSError) as exc:
            raise TimeSpecError(f"not a time: {text!r} ({HELP})") from exc
    if t[:1] in "+-" and (span := parse_span(t[1:])) is not None:
        return now + timedelta(seconds=span if t[0] == "+" else -span)
    for suffix, sign in ((" ago", -1), (" left", 1)):
        if low.endswith(suffix) and (span := parse_span(t[: -len(suffix)])) is not None:
            return now + timedelta(seconds=sign * span)
    rest, given_zone = _zone_suffix(WEEKDAY_RE.sub("", t))
    wall_zone = given_zone or zone
    if CLOCK_RE.match(rest):
        rest = f"{now.date().isoformat()} {rest}"
    try:
        ts = datetime.fromisoformat(rest)
    except ValueError as exc:
        raise TimeSpecError(f"not a time: {text!r} ({HELP})") from exc
    return ts if ts.tzinfo else ts.replace(tzinfo=wall_zone)

