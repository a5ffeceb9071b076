"""The alerting sinks against real servers on loopback: a webhook and Alertmanager's v2 API
(http.server in a thread), e-mail (aiosmtpd, STARTTLS with a real certificate); retries while
the server is down, per-sink filters, bounded queues; the command and file sinks' hardening."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import tomllib
from datetime import UTC, datetime
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from conftest import read_events

from logsense import SAMPLE
from logsense.correlator import correlate
from logsense.sinks import (
    CommandSink,
    Delivery,
    EmailSink,
    FileSink,
    SinkError,
    alert_of,
    make_sink,
    parse_sink_flag,
)

WAIT = 15.0
INCIDENTS = [i.to_dict() for i in correlate(read_events([SAMPLE])[0])]
DISK = next(i for i in INCIDENTS if i["category"] == "disk_image")
HOST_OOM = next(i for i in INCIDENTS if i["category"] == "memory" and i["scope"] == "host")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """A real HTTP server on 127.0.0.1: every POST is queued as (path, headers, JSON body);
    `statuses` are answered in turn (then 200)."""

    def __init__(self, port: int | None = None, statuses: list[int] | None = None) -> None:
        self.posts: queue.Queue = queue.Queue()
        self.statuses = list(statuses or [])
        self.port = port or free_port()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.posts.put((self.path, dict(self.headers), json.loads(body), status))

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, timeout: float = WAIT):
        return self.posts.get(timeout=timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Warnings:
    """The warn callback, with a way to await a warning."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.cond = threading.Condition()

    def __call__(self, message: str) -> None:
        with self.cond:
            self.lines.append(message)
            self.cond.notify_all()

    def wait(self, text: str, timeout: float = WAIT) -> str:
        with self.cond:
            assert self.cond.wait_for(lambda: any(text in w for w in self.lines), timeout), self.lines
            return next(w for w in self.lines if text in w)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def delivery(spec: dict, warn: Warnings | None = None, **kw) -> Delivery:
    return Delivery(make_sink(spec), warn or Warnings(), **kw)


def test_webhook_posts_the_incident_as_json(receiver: Receiver):
    d = delivery(parse_sink_flag(f"webhook:{receiver.url}/hook"))
    d.put([DISK])
    path, headers, body, _ = receiver.get()
    assert (path, headers["Content-Type"], body) == ("/hook", "application/json", DISK)
    assert d.wait_idle(WAIT) and d.delivered == 1
    d.stop()


def test_webhook_retries_with_back_off_until_the_server_is_up_in_order():
    port = free_port()
    warn = Warnings()
    d = delivery({"type": "webhook", "url": f"http://127.0.0.1:{port}/", "timeout": 2}, warn)
    d.put([DISK, HOST_OOM])
    warn.wait("retrying with back-off")
    assert d.failures >= 1 and len(d.pending()) == 2
    r = Receiver(port)
    try:
        assert [r.get()[2]["id"], r.get()[2]["id"]] == [DISK["id"], HOST_OOM["id"]]
        warn.wait("delivering again")
        assert d.wait_idle(WAIT) and d.delivered == 2
    finally:
        d.stop()
        r.close()


def test_a_server_error_is_retried_a_client_error_drops_only_that_item():
    r = Receiver(statuses=[503, 400])
    warn = Warnings()
    d = delivery({"type": "webhook", "url": r.url}, warn)
    try:
        d.put([DISK, HOST_OOM])
        got = [r.get() for _ in range(3)]
        assert [(p[2]["id"], p[3]) for p in got] == [(DISK["id"], 503), (DISK["id"], 400), (HOST_OOM["id"], 200)]
        assert "HTTP 400" in warn.wait("rejected")
        assert d.wait_idle(WAIT) and (d.delivered, d.rejected) == (1, 1)
    finally:
        d.stop()
        r.close()


def test_webhook_bearer_token_comes_from_a_file(receiver: Receiver, tmp_path: Path):
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    d = delivery({"type": "webhook", "url": receiver.url, "bearer_token_file": str(token)})
    d.put([DISK])
    assert receiver.get()[1]["Authorization"] == "Bearer s3cret"
    d.stop()


def test_alertmanager_gets_a_v2_alert_that_ends_when_the_incident_resolves(receiver: Receiver):
    d = delivery(parse_sink_flag(f"alertmanager:{receiver.url}"))
    opened = {**DISK, "status": "open"}
    d.put([opened, DISK])
    path, _, alerts, _ = receiver.get()
    assert path == "/api/v2/alerts" and len(alerts) == 1
    alert = alerts[0]
    assert alert["labels"] == {"alertname": "LogsenseIncident", "severity": "critical", "category": "disk_image",
                               "host": "kvm01", "vm": "app01", "root_cause": DISK["root_cause"],
                               "incident": DISK["id"]}
    assert alert["annotations"]["title"] == DISK["title"]
    assert alert["annotations"]["explanation"] == DISK["explanation"]
    assert alert["startsAt"] == DISK["first_seen"]
    assert datetime.fromisoformat(alert["endsAt"]) > datetime.now(UTC)  # firing
    resolved = receiver.get()[2][0]
    assert resolved["labels"] == alert["labels"] and resolved["endsAt"] == DISK["last_seen"]
    d.stop()


def test_alert_of_a_host_incident_has_no_vm_label_and_ends_at_recovery():
    alert = alert_of(HOST_OOM, hold=60)
    assert "vm" not in alert["labels"] and alert["labels"]["host"] == "kvm01"
    assert alert["endsAt"] == HOST_OOM["recovered_at"]
    assert alert["annotations"]["affected_vms"] == "db01"


def test_a_sink_takes_only_its_severities_and_categories(receiver: Receiver):
    d = delivery({"type": "webhook", "url": receiver.url, "min_severity": "major", "categories": ["memory"]})
    minor_memory = {**HOST_OOM, "id": "minor", "severity": "minor"}
    d.put([minor_memory, DISK, HOST_OOM])
    assert receiver.get()[2]["id"] == HOST_OOM["id"]
    assert d.wait_idle(WAIT)
    assert receiver.posts.empty() and d.delivered == 1
    d.stop()


@pytest.mark.parametrize("spec, error", [
    ({"type": "webhook", "url": "ftp://x"}, "http:// or https://"),
    ({"type": "webhook"}, "needs a url"),
    ({"type": "alertmanager", "url": "http://x", "min_severity": "high"}, "min_severity"),
    ({"type": "email", "to": "ops@example.org", "categories": ["disk"]}, "categories"),
    ({"type": "email", "to": "ops@example.org", "password": "x"}, "takes no password"),
    ({"type": "email", "to": "nobody"}, "one address"),
    ({"type": "file", "path": "/x", "queue_max": 0}, "queue_max"),
])
def test_bad_sink_settings_are_one_clear_error(spec: dict, error: str):
    with pytest.raises(SinkError, match=error):
        make_sink(spec)


def test_the_queue_is_bounded_dropping_the_oldest_and_saying_so():
    warn = Warnings()
    d = delivery({"type": "webhook", "url": f"http://127.0.0.1:{free_port()}/"}, warn, queue_max=3)
    items = [{**DISK, "id": str(n)} for n in range(5)]
    d.put(items)
    assert [o["id"] for o in d.pending()] == ["2", "3", "4"] and d.dropped == 2
    warn.wait("queue full (3)")
    d.stop()
    restored = delivery({"type": "webhook", "url": f"http://127.0.0.1:{free_port()}/"}, queued=items, queue_max=2)
    assert [o["id"] for o in restored.pending()] == ["3", "4"]
    restored.stop()


# -- e-mail -------------------------------------------------------------------------------
class Mailbox:
    """aiosmtpd's handler: every message received, with whether the session was encrypted."""

    def __init__(self) -> None:
        self.got: queue.Queue = queue.Queue()

    async def handle_DATA(self, server, session, envelope):
        self.got.put((envelope, session.ssl is not None, session.authenticated))
        return "250 OK"


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
                    "-out", str(cert), "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def smtp_server(box: Mailbox, port: int, **kw) -> Controller:
    c = Controller(box, hostname="127.0.0.1", port=port, **kw)
    c.start()
    return c


def test_email_is_sent_and_retried_while_the_smtp_server_is_down():
    port = free_port()
    warn = Warnings()
    d = delivery({"type": "email", "to": "oncall@example.org", "server": "127.0.0.1", "port": port,
                  "from": "logsense@kvm01.example.org", "timeout": 5}, warn)
    d.put([DISK])
    warn.wait("retrying with back-off")
    box = Mailbox()
    server = smtp_server(box, port)
    try:
        envelope, encrypted, _ = box.got.get(timeout=WAIT)
        msg = message_from_bytes(envelope.content, policy=policy.default)
        assert (envelope.mail_from, envelope.rcpt_tos) == ("logsense@kvm01.example.org", ["oncall@example.org"])
        assert msg["Subject"] == f"[logsense] resolved critical: {DISK['title']}"
        body = msg.get_content()
        assert DISK["explanation"] in body and "virsh domblklist app01 --details" in body
        assert not encrypted
        warn.wait("delivering again")
        assert d.wait_idle(WAIT) and d.delivered == 1
    finally:
        d.stop()
        server.stop()


def test_email_uses_starttls_and_logs_in_with_the_credentials_file(tmp_path: Path):
    cert, key = self_signed(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"pa:ss word")

    creds = tmp_path / "smtp-credentials"
    creds.write_text("logsense\npa:ss word\n")
    box, port = Mailbox(), free_port()
    server = smtp_server(box, port, tls_context=ctx, require_starttls=True, authenticator=authenticator,
                         auth_required=True)
    try:
        sink = make_sink({"type": "email", "to": "oncall@example.org", "server": "127.0.0.1", "port": port,
                          "credentials_file": str(creds), "ca_file": str(cert)})
        sink.send(HOST_OOM)
        envelope, encrypted, authenticated = box.got.get(timeout=WAIT)
        assert encrypted and authenticated and logins == [(b"logsense", b"pa:ss word")]
    finally:
        server.stop()


def test_credentials_are_never_sent_without_tls(tmp_path: Path):
    creds = tmp_path / "smtp-credentials"
    creds.write_text("logsense\nsecret\n")
    box, port = Mailbox(), free_port()
    server = smtp_server(box, port)
    try:
        sink = make_sink({"type": "email", "to": "oncall@example.org", "server": "127.0.0.1", "port": port,
                          "credentials_file": str(creds)})
        with pytest.raises(SinkError, match="credentials not sent"):
            sink.send(DISK)
        assert box.got.empty()
    finally:
        server.stop()


def test_email_subject_stays_one_line_whatever_the_logs_say():
    msg = EmailSink("ops@example.org").message({**DISK, "title": "vm\r\nBcc: victim@example.org"})
    assert "\n" not in msg["Subject"] and msg["Bcc"] is None


# -- command and file sinks ---------------------------------------------------------------
def test_a_command_flooding_stderr_costs_bounded_memory_and_reports_its_last_line():
    script = ("import sys\n"
              "for _ in range(20000): sys.stderr.write('y' * 1000 + '\\n')\n"  # 20 MB
              "sys.stderr.write('the real reason\\n')\nsys.exit(4)\n")
    sink = CommandSink([sys.executable, "-c", script])
    with pytest.raises(SinkError, match="exit status 4: the real reason"):
        sink.send(DISK)


def process_gone(pid: int) -> bool:
    """Gone, or a zombie (no reaper in the container reaps an orphaned grandchild)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_running_command_and_its_children_do_not_outlive_the_sink(tmp_path: Path):
    fifo = tmp_path / "started"
    os.mkfifo(fifo)
    script = ("import os, subprocess, sys, time\n"
              "child = subprocess.Popen(['sleep', '60'])\n"
              f"open({str(fifo)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
              "time.sleep(60)\n")
    d = Delivery(CommandSink([sys.executable, "-c", script], timeout=120), Warnings())
    d.put([DISK])
    with open(fifo) as f:  # opens when the command has started its child
        pids = [int(p) for p in f.read().split()]
    d.stop()
    assert all(process_gone(p) for p in pids)
    assert not d.thread.is_alive()


def test_file_sink_cuts_a_torn_last_line_before_writing(tmp_path: Path):
    out = tmp_path / "incidents.jsonl"
    out.write_text(json.dumps(HOST_OOM) + "\n" + json.dumps(DISK)[:57])  # kill -9 mid-write
    warn = Warnings()
    d = Delivery(FileSink(str(out)), warn)
    d.put([DISK])
    assert d.wait_idle(WAIT)
    d.stop()
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [HOST_OOM["id"], DISK["id"]]
    assert "torn last line (57 bytes)" in warn.wait("torn")


def test_file_sink_finishes_a_short_write_or_cuts_the_torn_line_it_left(tmp_path: Path):
    """A real short write: RLIMIT_FSIZE lets the kernel write only part of the line (then
    EFBIG); the failed send is retried and the line it tore is cut first."""
    out = tmp_path / "incidents.jsonl"
    script = f"""
import json, os, resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
from logsense.sinks import FileSink
sink = FileSink({str(out)!r})
sink.send({{"id": "first"}})
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize({str(out)!r}) + 10, hard))
try:
    sink.send({{"id": "second", "pad": "x" * 100}})
except OSError as exc:
    print("failed:", exc.strerror, os.path.getsize({str(out)!r}))
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
sink.send({{"id": "second", "pad": "x" * 100}})
"""
    root = Path(__file__).parent.parent
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 0, proc.stderr
    first_size = len(json.dumps({"id": "first"})) + 1
    assert proc.stdout.split() == ["failed:", "File", "too", "large", str(first_size + 10)]  # 10 bytes torn
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["first", "second"]


def test_the_example_config_and_its_commented_sinks_are_valid():
    from logsense.daemon import Config

    example = Path(__file__).parent.parent / "contrib" / "logsense.toml"
    Config.load(str(example), {"state_dir": None})
    blocks = re.findall(r"^# \[\[sink\]\]\n((?:# .*\n)+)", example.read_text(), re.M)
    kinds = []
    for block in blocks:
        spec = tomllib.loads("\n".join(line[2:] for line in block.splitlines()))
        kinds.append(make_sink(spec).name.split(":")[0])
    assert {"journal", "command", "webhook", "alertmanager", "email"} <= set(kinds)


def test_a_webhook_that_never_answers_times_out_and_is_retried():
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        warn = Warnings()
        d = delivery({"type": "webhook", "url": f"http://127.0.0.1:{silent.getsockname()[1]}/", "timeout": 0.3}, warn)
        d.put([DISK])
        assert "timed out" in warn.wait("retrying with back-off")
        assert d.pending() == [DISK]
        d.stop()


def test_the_unit_and_its_network_drop_in_pass_systemd_analyze(tmp_path: Path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    contrib = Path(__file__).parent.parent / "contrib"
    (tmp_path / "logsense.service.d").mkdir()
    shutil.copy(contrib / "logsense.service", tmp_path)
    dropin = (contrib / "logsense-network.conf").read_text().replace("#IPAddressAllow=", "IPAddressAllow=")
    (tmp_path / "logsense.service.d" / "network.conf").write_text(dropin)
    proc = subprocess.run([analyze, "verify", "--man=no", str(tmp_path / "logsense.service")], capture_output=True,
                          text=True, env={**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:"}, timeout=60)
    complaints = [line for line in proc.stderr.splitlines() if "/logsense is not executable" not in line]
    assert complaints == []
    assert "IPAddressDeny=any" in dropin and "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" in dropin


# -- the real Alertmanager (Debian's prometheus-alertmanager) --------------------------------
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


@pytest.fixture
def alertmanager(tmp_path: Path):
    """A real Alertmanager on loopback (no cluster), ready when /-/ready answers."""
    if ALERTMANAGER is None:
        pytest.fail("Alertmanager is not installed (bash dev.sh test installs it)")
    cfg = tmp_path / "alertmanager.yml"
    cfg.write_text("route:\n  receiver: nobody\nreceivers:\n  - name: nobody\n")
    port = free_port()
    proc = subprocess.Popen([ALERTMANAGER, f"--config.file={cfg}", f"--storage.path={tmp_path / 'am-data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for line in proc.stderr:  # its own log says when it listens
            if "Listening on" in line:
                break
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def alerts_in(url: str, **params: str) -> list[dict]:
    import urllib.parse
    import urllib.request

    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{url}/api/v2/alerts?{query}", timeout=5) as resp:
        return json.loads(resp.read())


def test_a_real_alertmanager_takes_the_alert_and_its_resolution(alertmanager: str):
    sink = make_sink(parse_sink_flag(f"alertmanager:{alertmanager}"))
    sink.send({**DISK, "status": "open", "last_seen": datetime.now(UTC).isoformat()})
    (alert,) = alerts_in(alertmanager)
    assert alert["status"]["state"] == "active"
    assert {k: alert["labels"][k] for k in ("alertname", "severity", "category", "host", "vm")} == {
        "alertname": "LogsenseIncident", "severity": "critical", "category": "disk_image", "host": "kvm01",
        "vm": "app01"}
    assert alert["annotations"]["title"] == DISK["title"]
    assert datetime.fromisoformat(alert["endsAt"].replace("Z", "+00:00")) > datetime.now(UTC)
    sink.send(DISK)  # resolved: endsAt in the past, and Alertmanager lists only alerts not yet ended
    assert alerts_in(alertmanager) == []
