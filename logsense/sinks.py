"""Where the daemon's incidents go: stdout JSON lines, an append-only file, the systemd
journal, a command fed the JSON on stdin, and the alerting ends: a webhook (JSON POST),
Alertmanager (v2 API) and e-mail (SMTP).

Each sink has its own bounded queue and thread (`Delivery`): a failing sink is retried with
back-off and neither stops the others nor loses an incident; what it has not accepted yet
is saved in the daemon's state and delivered after a restart. Each sink takes only the
incidents at or above its `min_severity` and in its `categories` (config keys).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import smtplib
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from logsense import __version__
from logsense.i18n import t as tr
from logsense.i18n import word
from logsense.model import CATEGORIES, SEVERITY_RANK

# MESSAGE_ID of logsense's journal entries (journalctl MESSAGE_ID=...), fixed forever
MESSAGE_ID = "5e7c0d3f2a9b4c61b8e4f1a07d2c9e35"
PRIORITY = {"critical": 2, "major": 3, "minor": 4}
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 60.0
ROOM_WAIT = 10.0  # seconds a full queue of a sink that is not failing is waited for, per item
QUEUE_MAX = 10_000  # items a sink may hold undelivered; beyond, the oldest are dropped (and counted)
STDERR_KEEP = 4096  # bytes of a command's stderr kept for the warning; the rest is read and dropped
HTTP_TIMEOUT = 10.0
ALERT_HOLD = 3600.0  # seconds an open incident's alert lasts in Alertmanager unless updated or resolved
USER_AGENT = f"logsense/{__version__}"
Warn = Callable[[str], None]


class SinkError(Exception):
    """A failure worth retrying (server down, timeout, non-zero exit)."""


class SinkRejected(SinkError):
    """The receiver refused this item for good (HTTP 4xx): retrying would block the queue."""


def _quiet(message: str) -> None:
    pass


class Sink:
    """What every sink has: a name (its queue's key in the state), a filter, send, close."""

    name = "sink"
    lang = "en"  # words of the sinks people read (email); the daemon sets its --lang
    min_severity: str | None = None
    categories: frozenset[str] | None = None
    warn: Warn = staticmethod(_quiet)

    @property
    def label(self) -> str:
        """The sink in metrics: its name without anything secret (URL credentials and query,
        a command's arguments)."""
        return self.name

    def wants(self, obj: dict[str, Any]) -> bool:
        if self.min_severity and SEVERITY_RANK.get(obj.get("severity") or "", 0) < SEVERITY_RANK[self.min_severity]:
            return False
        return self.categories is None or obj.get("category") in self.categories

    def send(self, obj: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Let go of anything still running (a child process)."""


class StdoutSink(Sink):
    name = "stdout"

    def __init__(self, text: bool = False) -> None:
        self.text = text  # one line a change, for a person watching a terminal

    def send(self, obj: dict[str, Any]) -> None:
        sys.stdout.write((text_line(obj, self.lang) if self.text else json.dumps(obj)) + "\n")
        sys.stdout.flush()


def text_line(obj: dict[str, Any], lang: str = "en") -> str:
    """An incident change (or an event) as one line: when, status, severity, where, what."""
    from rich.cells import cell_len

    from logsense.text import safe

    def cells(text: str, width: int = 8) -> str:  # padded by terminal cells: a CJK character takes two
        return text + " " * max(width - cell_len(text), 0)

    if "title" in obj:
        when = obj.get("last_seen") or obj.get("first_seen") or ""
        where = obj.get("vm") or ", ".join(obj.get("affected_vms") or []) or obj.get("host") or "-"
        status, severity = word("status", obj.get("status", "open"), lang), word("severity", obj.get("severity"), lang)
        return (f"{when[:19]} {cells(status)} {cells(severity)} {safe(where)}: "
                f"{safe(obj['title'])}  [{obj.get('id')} v{obj.get('version')}]")
    return (f"{str(obj.get('ts', ''))[:19]} {'event':8} {obj.get('severity') or '-':8} {safe(obj.get('vm') or '-')}: "
            f"{obj.get('pattern') or '-'}  {safe(str(obj.get('message', ''))[:200])}")


class FileSink(Sink):
    """Appends one JSON object a line. A line is written whole (short writes are continued);
    a torn last line left by a crash or a full disk is cut off before the next one is written
    (the item it belonged to is still queued, so it is written again whole)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.name = f"file:{path}"
        self.tail_checked = False

    def send(self, obj: dict[str, Any]) -> None:
        data = memoryview((json.dumps(obj) + "\n").encode())
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            if not self.tail_checked:
                self._cut_torn_tail(fd)
                self.tail_checked = True
            self.tail_checked = False  # until this line is whole
            while data:
                data = data[os.write(fd, data):]
            self.tail_checked = True
        finally:
            os.close(fd)

    def _cut_torn_tail(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return
        end = size
        while end > 0:
            start = max(0, end - 65536)
            chunk = os.pread(fd, end - start, start)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                end = start + nl + 1
                break
            end = start
        os.ftruncate(fd, end)
        self.warn(f"sink {self.name}: cut a torn last line ({size - end} bytes) left by an interrupted write")


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


class JournalSink(Sink):
    name = "journal"

    def send(self, obj: dict[str, Any]) -> None:
        from systemd import journal

        if "title" in obj:
            message = f"[{obj.get('status')} v{obj.get('version')}] {obj['title']}"
        else:
            message = f"{obj.get('pattern') or 'event'}: {obj.get('message', '')}"
        journal.send(message, MESSAGE_ID=MESSAGE_ID, PRIORITY=str(PRIORITY.get(obj.get("severity") or "", 5)),
                     SYSLOG_IDENTIFIER="logsense", **journal_fields(obj))


class CommandSink(Sink):
    """Runs a command (an argv list, never a shell) with the JSON on stdin; log text never
    reaches its arguments. A non-zero exit or a timeout is a failure, retried later. Only the
    last STDERR_KEEP bytes of its stderr are kept; its process group is killed on a timeout and
    when the daemon stops, so no child outlives it."""

    def __init__(self, argv: list[str], timeout: float = 30.0) -> None:
        if not argv:
            raise SinkError("a command sink needs a command")
        self.argv, self.timeout = list(argv), timeout
        self.name = "command:" + shlex.join(self.argv)
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()

    def send(self, obj: dict[str, Any]) -> None:
        with self.lock:
            self.proc = proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                                stderr=subprocess.PIPE, start_new_session=True)
        tail = bytearray()
        pumps = [threading.Thread(target=_feed, args=(proc.stdin, (json.dumps(obj) + "\n").encode()), daemon=True),
                 threading.Thread(target=_keep_tail, args=(proc.stderr, tail), daemon=True)]
        for t in pumps:
            t.start()
        try:
            status = proc.wait(self.timeout)
        except subprocess.TimeoutExpired:
            self._kill(proc)
            raise SinkError(f"no exit within {self.timeout:g} s; killed") from None
        finally:
            for t in pumps:
                t.join(1.0)  # a grandchild may hold stderr open: do not wait for it
            with self.lock:
                self.proc = None
        if status != 0:
            err = tail.decode("utf-8", "replace").strip().splitlines()
            raise SinkError(f"exit status {status}" + (f": {err[-1][:200]}" if err else ""))

    @property
    def label(self) -> str:
        return "command:" + os.path.basename(self.argv[0])

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def close(self) -> None:
        with self.lock:
            proc = self.proc
        if proc is not None and proc.poll() is None:
            self._kill(proc)


def _feed(stream, data: bytes) -> None:
    try:
        stream.write(data)
        stream.close()
    except (BrokenPipeError, OSError, ValueError):
        pass  # the command did not read its input: its exit status tells


def _keep_tail(stream, tail: bytearray) -> None:
    while chunk := stream.read1(65536):
        tail.extend(chunk)
        del tail[:-STDERR_KEEP]
    stream.close()


def post_json(url: str, payload: Any, timeout: float, headers: dict[str, str] | None = None) -> None:
    """POST `payload` as JSON. 2xx: delivered; 408, 429, 5xx, refused or timed out: SinkError
    (retried); any other 4xx: SinkRejected (this item is dropped, the next one tried)."""
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST", headers={
        "Content-Type": "application/json", "User-Agent": USER_AGENT, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - the scheme is checked
            resp.read(65536)
    except urllib.error.HTTPError as exc:
        reason = f"HTTP {exc.code} {exc.reason}"
        if 400 <= exc.code < 500 and exc.code not in (408, 429):
            raise SinkRejected(reason) from None
        raise SinkError(reason) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise SinkError(str(getattr(exc, "reason", exc))) from None


def _http_url(url: str, kind: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise SinkError(f"a {kind} sink needs an http:// or https:// URL, not {url!r}")
    return url


def _url_label(kind: str, url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{kind}:{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"


def _read_secret(path: str, what: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()
    except OSError as exc:
        raise SinkError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None


class WebhookSink(Sink):
    """POSTs each incident as a JSON object; `bearer_token_file` names a file whose first line is
    sent as `Authorization: Bearer` (a secret stays out of the config and the command line)."""

    def __init__(self, url: str, timeout: float = HTTP_TIMEOUT, bearer_token_file: str | None = None) -> None:
        self.url, self.timeout, self.token_file = _http_url(url, "webhook"), timeout, bearer_token_file
        self.name = f"webhook:{url}"

    @property
    def label(self) -> str:
        return _url_label("webhook", self.url)

    def send(self, obj: dict[str, Any]) -> None:
        headers = {}
        if self.token_file:
            token = (_read_secret(self.token_file, "the bearer token") or [""])[0].strip()
            headers["Authorization"] = f"Bearer {token}"
        post_json(self.url, obj, self.timeout, headers)


def alert_of(obj: dict[str, Any], hold: float, now: datetime | None = None) -> dict[str, Any]:
    """An incident as an Alertmanager v2 alert. Labels identify it (incident id included, so two
    incidents of one kind stay two alerts); an open one ends `hold` seconds from now unless
    updated; a resolved one ends when it was last seen (or recovered)."""
    now = now or datetime.now(UTC)
    labels = {"alertname": "LogsenseIncident", "severity": obj.get("severity"), "category": obj.get("category"),
              "host": obj.get("host"), "vm": obj.get("vm"), "root_cause": obj.get("root_cause") or obj.get("pattern"),
              "incident": obj.get("id")}
    annotations = {"title": obj.get("title") or obj.get("message"), "explanation": obj.get("explanation"),
                   "affected_vms": ", ".join(obj.get("affected_vms") or []),
                   "remediation": "\n".join(obj.get("remediation") or []),
                   "diagnostics": "\n".join(obj.get("diagnostics") or [])}
    starts = obj.get("first_seen") or obj.get("ts") or now.isoformat()
    if obj.get("status") == "resolved":
        ends = obj.get("recovered_at") or obj.get("last_seen") or now.isoformat()
    else:
        ends = (now + timedelta(seconds=hold)).isoformat()
    return {"labels": {k: str(v) for k, v in labels.items() if v},
            "annotations": {k: str(v) for k, v in annotations.items() if v},
            "startsAt": starts, "endsAt": ends}


class AlertmanagerSink(Sink):
    """Alertmanager's v2 API: POST /api/v2/alerts with the incident as one alert."""

    def __init__(self, url: str, timeout: float = HTTP_TIMEOUT, hold: float = ALERT_HOLD) -> None:
        base = _http_url(url, "alertmanager").rstrip("/")
        self.endpoint = base if base.endswith("/api/v2/alerts") else base + "/api/v2/alerts"
        self.timeout, self.hold = timeout, hold
        self.name = f"alertmanager:{url}"

    @property
    def label(self) -> str:
        return _url_label("alertmanager", self.endpoint)

    def send(self, obj: dict[str, Any]) -> None:
        post_json(self.endpoint, [alert_of(obj, self.hold)], self.timeout)


def _one_line(text: str, limit: int = 200) -> str:
    return "".join(c if c.isprintable() else " " for c in text)[:limit]


def email_body(obj: dict[str, Any], lang: str = "en") -> str:
    """Plain text of an incident (or event) for a mail body, its labels in `lang`."""
    if "title" not in obj:
        return json.dumps(obj, indent=2)
    lines = [obj["title"], "", tr("email.status", lang, status=word("status", obj.get("status"), lang),
                                 version=obj.get("version")),
             tr("email.severity", lang, severity=word("severity", obj.get("severity"), lang),
               category=obj.get("category")),
             tr("email.host", lang, host=obj.get("host"), vms=", ".join(obj.get("affected_vms") or []) or "-"),
             tr("email.seen", lang, first=obj.get("first_seen"), last=obj.get("last_seen")), "",
             obj.get("explanation") or "", "", tr("email.remediation", lang)]
    lines += [f"  - {s}" for s in obj.get("remediation") or []]
    lines += ["", tr("email.diagnostics", lang)] + [f"  $ {s}" for s in obj.get("diagnostics") or []]
    lines += ["", tr("email.evidence", lang)] + [f"  {e.get('ts')} {e.get('file') or e.get('cursor') or 'journal'}:"
                                  f"{e.get('line') or ''} {e.get('message')}" for e in obj.get("evidence") or []]
    return "\n".join(lines) + "\n"


class EmailSink(Sink):
    """Mails each incident over SMTP. STARTTLS whenever the server offers it (`starttls =
    "require"` refuses to send otherwise); credentials come from `credentials_file` (user on the
    first line, password on the second) and are never sent over an unencrypted connection."""

    def __init__(self, to: str, server: str = "localhost", port: int = 25, sender: str | None = None,
                 credentials_file: str | None = None, starttls: str = "auto", ca_file: str | None = None,
                 timeout: float = 30.0) -> None:
        if "@" not in to or any(c in to for c in "\r\n,;"):
            raise SinkError(f"an email sink needs one address, not {to!r}")
        if starttls not in ("auto", "require"):
            raise SinkError(f"starttls is 'auto' or 'require', not {starttls!r}")
        self.to, self.server, self.port, self.timeout = to, server, int(port), timeout
        self.sender = sender or f"logsense@{os.uname().nodename}"
        self.credentials_file, self.starttls, self.ca_file = credentials_file, starttls, ca_file
        self.name = f"email:{to}"

    def message(self, obj: dict[str, Any]) -> EmailMessage:
        msg = EmailMessage()
        title = obj.get("title") or f"{obj.get('pattern') or 'event'}: {obj.get('message', '')}"
        status = word("status", obj.get("status"), self.lang) if obj.get("status") else "event"
        severity = word("severity", obj.get("severity"), self.lang) if obj.get("severity") else ""
        msg["Subject"] = _one_line(f"[logsense] {status} {severity}: {title}")
        msg["From"], msg["To"] = self.sender, self.to
        msg["Date"], msg["Message-ID"] = formatdate(localtime=False), make_msgid(domain="logsense")
        msg.set_content(email_body(obj, self.lang))
        return msg

    def send(self, obj: dict[str, Any]) -> None:
        msg = self.message(obj)
        try:
            with smtplib.SMTP(self.server, self.port, timeout=self.timeout) as smtp:
                smtp.ehlo()
                tls = smtp.has_extn("starttls")
                if tls:
                    smtp.starttls(context=ssl.create_default_context(cafile=self.ca_file))
                    smtp.ehlo()
                elif self.starttls == "require":
                    raise SinkError(f"{self.server}:{self.port} offers no STARTTLS (starttls = \"require\")")
                if self.credentials_file:
                    if not tls:
                        raise SinkError(f"{self.server}:{self.port} offers no STARTTLS: credentials not sent")
                    creds = _read_secret(self.credentials_file, "SMTP credentials")
                    if len(creds) < 2:
                        raise SinkError(f"{self.credentials_file}: user on the first line, password on the second")
                    smtp.login(creds[0], creds[1])
                smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            raise SinkRejected(f"recipient refused: {exc.recipients}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise SinkError(f"{type(exc).__name__}: {exc}") from None


# config keys each sink type takes, beside `type` and the filter keys
SINK_KEYS = {"stdout": {"format"}, "journal": set(), "file": {"path"}, "command": {"argv", "command", "timeout"},
             "webhook": {"url", "timeout", "bearer_token_file"}, "alertmanager": {"url", "timeout", "hold"},
             "email": {"to", "server", "port", "from", "credentials_file", "starttls", "ca_file", "timeout"}}
COMMON_KEYS = {"type", "min_severity", "categories", "queue_max"}


def _build(kind: str, spec: dict[str, Any]) -> Sink:
    if kind == "stdout":
        if spec.get("format", "json") not in ("json", "text"):
            raise SinkError("a stdout sink's format is json or text")
        return StdoutSink(spec.get("format") == "text")
    if kind == "journal":
        return JournalSink()
    if kind == "file":
        if not spec.get("path"):
            raise SinkError("a file sink needs a path")
        return FileSink(str(spec["path"]))
    if kind == "command":
        argv = spec.get("argv") or spec.get("command")
        if isinstance(argv, str):
            argv = shlex.split(argv)
        return CommandSink([str(a) for a in argv or []], float(spec.get("timeout", 30.0)))
    if kind in ("webhook", "alertmanager") and not spec.get("url"):
        raise SinkError(f"a {kind} sink needs a url")
    if kind == "webhook":
        return WebhookSink(str(spec["url"]), float(spec.get("timeout", HTTP_TIMEOUT)), spec.get("bearer_token_file"))
    if kind == "alertmanager":
        return AlertmanagerSink(str(spec["url"]), float(spec.get("timeout", HTTP_TIMEOUT)),
                                float(spec.get("hold", ALERT_HOLD)))
    if not spec.get("to"):
        raise SinkError("an email sink needs an address (to)")
    return EmailSink(str(spec["to"]), str(spec.get("server", "localhost")), int(spec.get("port", 25)),
                     spec.get("from"), spec.get("credentials_file"), str(spec.get("starttls", "auto")),
                     spec.get("ca_file"), float(spec.get("timeout", 30.0)))


def make_sink(spec: dict[str, Any]) -> Sink:
    """A sink from its config table: {type = "stdout"|"file"|"journal"|"command"|"webhook"|
    "alertmanager"|"email", ..., min_severity = "major", categories = ["memory", ...]}."""
    if not isinstance(spec, dict):
        raise SinkError(f"a sink is a table ([[sink]] with type = ...), not {spec!r}")
    kind = spec.get("type")
    if kind not in SINK_KEYS:
        raise SinkError(f"unknown sink type {kind!r} ({', '.join(SINK_KEYS)})")
    unknown = set(spec) - SINK_KEYS[kind] - COMMON_KEYS
    if unknown:
        raise SinkError(f"a {kind} sink takes no {', '.join(sorted(unknown))}")
    try:
        sink = _build(kind, spec)
    except (TypeError, ValueError) as exc:
        raise SinkError(f"{kind} sink: {exc}") from None
    severity = spec.get("min_severity")
    if severity is not None and severity not in SEVERITY_RANK:
        raise SinkError(f"min_severity is critical, major or minor, not {severity!r}")
    cats = spec.get("categories")
    if cats is not None:
        if isinstance(cats, str) or not isinstance(cats, list) or not set(cats) <= set(CATEGORIES):
            raise SinkError(f"categories is a list of {', '.join(CATEGORIES)}; got {cats!r}")
        sink.categories = frozenset(cats)
    sink.min_severity = severity
    queue_max = spec.get("queue_max", QUEUE_MAX)
    if not isinstance(queue_max, int) or queue_max < 1:
        raise SinkError(f"queue_max is a positive number of items, not {queue_max!r}")
    return sink


def parse_sink_flag(text: str) -> dict[str, Any]:
    """`--sink stdout | journal | file:PATH | command:CMD ARGS (split like a shell would, run
    without one) | webhook:URL | alertmanager:URL | email:ADDRESS`."""
    kind, _, rest = text.partition(":")
    if kind == "file":
        return {"type": "file", "path": rest}
    if kind == "command":
        return {"type": "command", "argv": shlex.split(rest)}
    if kind in ("webhook", "alertmanager"):
        return {"type": kind, "url": rest}
    if kind == "email":
        return {"type": "email", "to": rest}
    if rest:
        raise SinkError(f"sink {kind!r} takes no argument")
    return {"type": kind}


class Delivery:
    """One sink's bounded queue and the thread that empties it, backing off while it fails.
    Counts what it delivered, the failed attempts, what the receiver rejected and what was
    dropped because the queue was full (for the metrics)."""

    def __init__(self, sink: Sink, warn: Warn, queued: list[dict[str, Any]] | None = None,
                 queue_max: int = QUEUE_MAX) -> None:
        self.sink, self.warn = sink, warn
        sink.warn = warn
        self.replaced: list[Sink] = []
        self.queue_max = max(1, queue_max)
        self.queue: deque[dict[str, Any]] = deque()
        self.cond = threading.Condition()
        self.stopping = False
        self.failing = False
        self.delivered = self.failures = self.rejected = self.dropped = 0
        self._add(queued or [])
        self.thread = threading.Thread(target=self._run, name=f"logsense-sink-{sink.name}", daemon=True)
        self.thread.start()

    @property
    def name(self) -> str:
        return self.sink.name

    def _add(self, items: list[dict[str, Any]]) -> None:
        self.queue.extend(items)
        over = len(self.queue) - self.queue_max
        if over > 0:
            for _ in range(over):
                self.queue.popleft()
            if not self.dropped:
                self.warn(f"sink {self.name}: queue full ({self.queue_max}); dropping the oldest undelivered items")
            self.dropped += over

    def reconfigure(self, sink: Sink, queue_max: int) -> None:
        """The same sink from a reloaded config: its new filter and bound apply from now on."""
        sink.warn = self.warn
        with self.cond:
            self.replaced.append(self.sink)  # it may be sending still: closed with this delivery
            self.sink, self.queue_max = sink, max(1, queue_max)
            self._add([])

    def put(self, items: list[dict[str, Any]]) -> None:
        """Queue items. A sink that is delivering is waited for when its queue is full (the
        daemon slows to its pace: nothing dropped); only a failing or stalled one loses the
        oldest items beyond queue_max."""
        items = [o for o in items if self.sink.wants(o)]
        if not items:
            return
        with self.cond:
            for item in items:
                if len(self.queue) >= self.queue_max and not self.failing:
                    self.cond.notify_all()
                    self.cond.wait_for(lambda: len(self.queue) < self.queue_max or self.failing or self.stopping,
                                       timeout=ROOM_WAIT)
                self._add([item])
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
        for sink in [*self.replaced, self.sink]:
            sink.close()
        self.thread.join(timeout=5)

    def _done(self, item: dict[str, Any]) -> None:
        if self.queue and self.queue[0] is item:
            self.queue.popleft()
        self.cond.notify_all()

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
            except SinkRejected as exc:
                self.warn(f"sink {self.name}: rejected ({exc}); dropping incident {item.get('id', '?')}")
                with self.cond:
                    self.rejected += 1
                    self.failures += 1
                    self.failing = False  # the receiver answered: it is up
                    self._done(item)
                delay = BACKOFF_FIRST
                continue
            except Exception as exc:  # noqa: BLE001 - any failure of a sink is retried, never fatal
                if not self.failing:
                    self.warn(f"sink {self.name}: {type(exc).__name__}: {exc}; retrying with back-off")
                with self.cond:
                    self.failures += 1
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
                self.delivered += 1
                self._done(item)
