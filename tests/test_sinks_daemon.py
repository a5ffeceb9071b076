"""The alert sinks in the real daemon: configured in the config file with their filters,
retried while the receiver is down, their queue kept across a restart."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from test_daemon_helpers import GUEST_RAM, MISSING_IMAGE, Watch, append, libvirtd_line, qemu_line
from test_sinks import Receiver, free_port


@pytest.fixture
def start_watch():
    """`Watch(*args).ready()`, killed at the end if a failed test left it running."""
    started: list[Watch] = []

    def start(*args: str) -> Watch:
        started.append(Watch(*args))
        return started[-1].ready()

    yield start
    for w in started:
        if w.proc.poll() is None:
            w.kill()


def test_webhook_queue_survives_a_restart_and_takes_only_its_filter(tmp_path: Path, start_watch):
    logs, state = tmp_path / "log", tmp_path / "state"
    (logs / "qemu").mkdir(parents=True)
    (logs / "libvirtd.log").write_text(libvirtd_line("libvirt version: 9.0.0, package: 9.0.0-4+deb12u1 (Debian)",
                                                     level="info", where="virLogVMMessage:2", pid=1432))
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    config = tmp_path / "logsense.toml"
    config.write_text(f'paths = ["{logs}"]\njournal = false\nstate_dir = "{state}"\nhost = "kvm01"\ntz = "UTC"\n'
                      'window = 60\n[[sink]]\ntype = "stdout"\n'
                      f'[[sink]]\ntype = "webhook"\nurl = "{url}"\nmin_severity = "critical"\n'
                      'categories = ["memory"]\ntimeout = 2\n')
    w = start_watch("--config", str(config))
    append(logs / "libvirtd.log", libvirtd_line(MISSING_IMAGE))
    disk = w.wait(lambda o: o["status"] == "open")
    append(logs / "qemu" / "web01.log", qemu_line(GUEST_RAM))
    memory = w.wait(lambda o: o["status"] == "open" and o["category"] == "memory")
    assert disk["category"] == "disk_image" and disk["severity"] == "critical"
    w.wait_err(lambda line: f"sink webhook:{url}" in line and "retrying" in line)
    assert w.stop() == 0
    saved = json.loads((state / "state.json").read_text())["sinks"][f"webhook:{url}"]
    assert [o["id"] for o in saved] == [memory["id"]]

    receiver = Receiver(port)
    try:
        w = start_watch("--config", str(config))
        path, _, body, _ = receiver.get()
        assert (path, body["id"], body["status"], body["category"]) == ("/hook", memory["id"], "open", "memory")
        assert w.stop() == 0
        assert receiver.posts.empty()  # the disk_image incident is not this sink's
        assert f"webhook:{url}" not in json.loads((state / "state.json").read_text())["sinks"]
    finally:
        receiver.close()


def test_sighup_applies_new_sink_filters_and_refuses_a_malformed_sink(tmp_path: Path, start_watch):
    logs, state = tmp_path / "log", tmp_path / "state"
    (logs / "qemu").mkdir(parents=True)
    receiver = Receiver()
    config = tmp_path / "logsense.toml"
    head = f'paths = ["{logs}"]\njournal = false\nstate_dir = "{state}"\nhost = "kvm01"\ntz = "UTC"\nwindow = 60\n' \
           '[[sink]]\ntype = "stdout"\n'
    webhook = f'[[sink]]\ntype = "webhook"\nurl = "{receiver.url}/hook"\ncategories = ["{{}}"]\n'
    config.write_text(head + webhook.format("disk_image"))
    try:
        w = start_watch("--config", str(config))
        append(logs / "qemu" / "web01.log", qemu_line(GUEST_RAM))
        w.wait(lambda o: o["status"] == "open" and o["vm"] == "web01")
        config.write_text(head + webhook.format("memory"))
        w.proc.send_signal(signal.SIGHUP)
        w.wait_err(lambda line: line.startswith("logsense: reloaded"))
        append(logs / "qemu" / "db01.log", qemu_line(GUEST_RAM))
        db01 = w.wait(lambda o: o["status"] == "open" and o["vm"] == "db01")
        assert receiver.get()[2]["id"] == db01["id"]  # web01's was not this sink's when it opened
        config.write_text(head.replace('[[sink]]\ntype = "stdout"\n', 'sink = ["stdout"]\n'))
        w.proc.send_signal(signal.SIGHUP)
        w.wait_err(lambda line: "config reload failed, keeping the old one" in line and "sink" in line)
        assert w.stop() == 0
        assert receiver.posts.empty()
    finally:
        receiver.close()
