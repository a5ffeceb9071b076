"""Where the daemon's incidents go: stdout JSON lines, an append-only file, the systemd
journal, a command fed the JSON on stdin.

Each sink has its own queue and thread (`Delivery`): a failing sink is retried with
back-off and neither stops the others nor loses an incident; what it has not accepted yet
is saved in the daemon's state and delivered after a restart.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

# MESSAGE_ID of logsense's journal entries (journalctl MESSAGE_ID=...), fixed forever
MESSAGE_ID = "5e7c0d3f2a9b4c61b8e4f1a07d2c9e35"
PRIORITY = {"critical": 2, "major": 3, "minor": 4}
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 60.0
Warn = Callable[[str], None]


class SinkError(Exception):
    pass


class StdoutSink:
    name = "stdout"

    def __init__(self, text: bool = False) -> None:
        self.text = text  # one line a change, for a person watching a terminal

    def send(self, obj: dict[str, Any]) -> None:
        sys.stdout.write((text_line(obj) if self.text else json.dumps(obj)) + "\n")
        sys.stdout.flush()


def text_line(obj: dict[str, Any]) -> str:
    """An incident change (or an event) as one line: when, status, severity, where, what."""
    from logsense.text import safe

    if "title" in obj:
        when = obj.get("last_seen") or obj.get("first_seen") or ""
        where = obj.get("vm") or ", ".join(obj.get("affected_vms") or []) or obj.get("host") or "-"
        return (f"{when[:19]} {obj.get('status', 'open'):8} {obj.get('severity', '-'):8} {safe(where)}: "
                f"{safe(obj['title'])}  [{obj.get('id')} v{obj.get('version')}]")
    return (f"{str(obj.get('ts', ''))[:19]} {'event':8} {obj.get('severity') or '-':8} {safe(obj.get('vm') or '-')}: "
            f"{obj.get('pattern') or '-'}  {safe(str(obj.get('message', ''))[:200])}")


class FileSink:
    """Appends one JSON object a line; a line is written whole or not at all (O_APPEND)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.name = f"file:{path}"

    def send(self, obj: dict[str, Any]) -> None:
        data = (json.dumps(obj) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


def journal_fields(obj: dict[str, Any]) -> dict[str, str]:
    """The object as journal fields: LOGSENSE_<KEY>, lists one item a line, objects as JSON."""
    out = {}
    for key, value in obj.items():
        if value is None:
            continue
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            text = "\n".join(value)
        elif isinstance(value, list | dict):
            text = json.dumps(value)
        else:
            text = str(value)
        out["LOGSENSE_" + "".join(c if c.isalnum() else "_" for c in key).upper()] = text
    return out


class JournalSink:
    name = "journal"

    def send(self, obj: dict[str, Any]) -> None:
        from systemd import journal

        if "title" in obj:
            message = f"[{obj.get('status')} v{obj.get('version')}] {obj['title']}"
        else:
            message = f"{obj.get('pattern') or 'event'}: {obj.get('message', '')}"
        journal.send(message, MESSAGE_ID=MESSAGE_ID, PRIORITY=str(PRIORITY.get(obj.get("severity") or "", 5)),
                     SYSLOG_IDENTIFIER="logsense", **journal_fields(obj))


class CommandSink:
    """Runs a command (an argv list, never a shell) with the JSON on stdin; log text never
    reaches its arguments. A non-zero exit or a timeout is a failure, retried later."""

    def __init__(self, argv: list[str], timeout: float = 30.0) -> None:
        if not argv:
            raise SinkError("a command sink needs a command")
        self.argv, self.timeout = list(argv), timeout
        self.name = "command:" + shlex.join(self.argv)

    def send(self, obj: dict[str, Any]) -> None:
        proc = subprocess.run(self.argv, input=(json.dumps(obj) + "\n").encode(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=self.timeout, check=False)
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise SinkError(f"exit status {proc.returncode}" + (f": {err[-1][:200]}" if err else ""))


def make_sink(spec: dict[str, Any]):
    """A sink from its config table: {type = "stdout"|"file"|"journal"|"command", ...}."""
    kind = spec.get("type")
    if kind == "stdout":
        if spec.get("format", "json") not in ("json", "text"):
            raise SinkError("a stdout sink's format is json or text")
        return StdoutSink(spec.get("format") == "text")
    if kind == "file":
        if not spec.get("path"):
            raise SinkError("a file sink needs a path")
        return FileSink(str(spec["path"]))
    if kind == "journal":
        return JournalSink()
    if kind == "command":
        argv = spec.get("argv") or spec.get("command")
        if isinstance(argv, str):
            argv = shlex.split(argv)
        return CommandSink([str(a) for a in argv or []], float(spec.get("timeout", 30.0)))
    raise SinkError(f"unknown sink type {kind!r} (stdout, file, journal or command)")


def parse_sink_flag(text: str) -> dict[str, Any]:
    """`--sink stdout | journal | file:PATH | command:CMD ARGS` (split like a shell would, run
    without one)."""
    kind, _, rest = text.partition(":")
    if kind == "file":
        return {"type": "file", "path": rest}
    if kind == "command":
        return {"type": "command", "argv": shlex.split(rest)}
    if rest:
        raise SinkError(f"sink {kind!r} takes no argument")
    return {"type": kind}


class Delivery:
    """One sink's queue and the thread that empties it, backing off while it fails."""

    def __init__(self, sink, warn: Warn, queued: list[dict[str, Any]] | None = None) -> None:
        self.sink, self.warn = sink, warn
        self.queue: deque[dict[str, Any]] = deque(queued or [])
        self.cond = threading.Condition()
        self.stopping = False
        self.failing = False
        self.delivered = 0
        self.thread = threading.Thread(target=self._run, name=f"logsense-sink-{sink.name}", daemon=True)
        self.thread.start()

    @property
    def name(self) -> str:
        return self.sink.name

    def put(self, items: list[dict[str, Any]]) -> None:
        with self.cond:
            self.queue.extend(items)
            self.cond.notify_all()

    def pending(self) -> list[dict[str, Any]]:
        """What is not accepted yet, the item being sent included (it may be sent twice)."""
        with self.cond:
            return list(self.queue)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until the queue is empty (or the sink is backing off); True if empty."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.queue and not self.failing:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return not self.queue

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        self.thread.join(timeout=5)

    def _run(self) -> None:
        delay = BACKOFF_FIRST
        while True:
            with self.cond:
                while not self.queue and not self.stopping:
                    self.cond.wait()
                if self.stopping:
                    return
                item = self.queue[0]
            try:
                self.sink.send(item)
            except BrokenPipeError:
                self.warn(f"sink {self.name}: the reader went away; dropping this sink")
                with self.cond:
                    self.stopping = True
                    self.cond.notify_all()
                return
            except Exception as exc:  # noqa: BLE001 - any failure of a sink is retried, never fatal
                if not self.failing:
                    self.warn(f"sink {self.name}: {type(exc).__name__}: {exc}; retrying with back-off")
                with self.cond:
                    self.failing = True
                    self.cond.notify_all()
                    self.cond.wait_for(lambda: self.stopping, timeout=delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            with self.cond:
                if self.failing:
                    self.warn(f"sink {self.name}: delivering again")
                self.failing = False
                delay = BACKOFF_FIRST
                if self.queue and self.queue[0] is item:
                    self.queue.popleft()
                self.delivered += 1
                self.cond.notify_all()
