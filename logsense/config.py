"""Settings: `/etc/logsense/logsense.toml`, then `conf.d/*.toml` beside it in name order, then flags.

A drop-in replaces a setting, except the lists `disable` and `catalogue`, which it extends (so a
package or a team can switch off a pattern without editing the main file). A `patterns/` folder
beside the file is the site's catalogue, used when it exists. `--config FILE` or LOGSENSE_CONFIG
name another file (which must exist); the default file may be absent.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from logsense.pipeline import InputError

DEFAULT_FILE = Path("/etc/logsense/logsense.toml")
EXTENDED = ("disable", "catalogue")

# every setting, its default and what it does (`analyze`/`events` read the first five; `watch` all)
SETTINGS: dict[str, tuple[Any, str]] = {
    "disable": ([], "pattern ids switched off, e.g. [\"qemu.guest.cpuid-warning\"]"),
    "catalogue": ([], "more pattern folders (besides /etc/logsense/patterns)"),
    "tz": (None, "zone of syslog lines that carry none (default: the machine's)"),
    "host": (None, "host name for sources that carry none"),
    "window": (120, "seconds of quiet that close an incident"),
    "reboot_grace": (600, "seconds after a host boot within which a VM that ran before must run again"),
    "lang": (None, "language of titles, explanations and headings: en or zh (default: from the locale)"),
    "paths": ([], "watch: files, folders or globs (default: /var/log/libvirt, messages or syslog)"),
    "journal": (True, "watch: follow the journal"),
    "journal_dir": (None, "watch: follow this journal folder instead of the system journal"),
    "state_dir": ("/var/lib/logsense", "watch: where positions are saved"),
    "from_start": (False, "watch: read files present at the first start from their beginning"),
    "emit": ("incidents", "watch: incidents or events"),
    "all_lines": (False, "watch: with emit = events, every line"),
    "format": ("json", "watch: json (one object a line) or text (for a person at a terminal)"),
    "sink": ([{"type": "stdout"}], "watch: [[sink]] tables: stdout, file, journal, command"),
}


def config_file(given: str | None = None) -> tuple[Path, bool]:
    """The file to read and whether it must exist: --config, LOGSENSE_CONFIG, or the default."""
    if given:
        return Path(given), True
    if env := os.environ.get("LOGSENSE_CONFIG"):
        return Path(env), True
    return DEFAULT_FILE, False


def _read(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read config: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from exc
    out = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in SETTINGS:
            raise InputError(f"{path}: unknown setting {key!r} (known: {', '.join(SETTINGS)})")
        if name in EXTENDED and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise InputError(f"{path}: {key} is a list of strings")
        out[name] = value
    return out


def read_settings(given: str | None = None) -> dict[str, Any]:
    """The merged settings (only those set anywhere; callers keep their defaults for the rest)."""
    path, required = config_file(given)
    if required and not path.exists():
        raise InputError(f"{path}: no such config file")
    settings = _read(path) if path.exists() else {}
    drop_ins = path.parent / "conf.d"
    for extra in sorted(drop_ins.glob("*.toml")) if drop_ins.is_dir() else []:
        for key, value in _read(extra).items():
            settings[key] = [*settings.get(key, []), *value] if key in EXTENDED else value
    site = path.parent / "patterns"
    if site.is_dir():
        settings["catalogue"] = [str(site), *settings.get("catalogue", [])]
    if "catalogue" in settings:  # the site folder may also be named in the file
        settings["catalogue"] = list(dict.fromkeys(os.path.normpath(d) for d in settings["catalogue"]))
    return settings
