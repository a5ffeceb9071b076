"""Hostile daemon configs (issue 16, class 13): a reload with values of the wrong type or out of
range is refused in one line and the daemon goes on with the old config."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from test_daemon_helpers import GUEST_RAM, Watch, append, qemu_line

from logsense.daemon import Config
from logsense.pipeline import InputError

BAD = [
    "window = nan", "window = inf", "window = 1e308", "window = -1", "window = true", 'window = "60"',
    "paths = [1, 2]", 'paths = "/var/log"', 'sinks = ["stdout"]', "sinks = 5", 'journal = "yes"',
    "host = 7", 'catalogue = [["x"]]', "from_start = 1",
]


@pytest.mark.parametrize("setting", BAD)
def test_a_config_value_of_the_wrong_type_or_range_is_one_input_error(tmp_path: Path, setting: str):
    config = tmp_path / "logsense.toml"
    config.write_text(setting + "\n")
    with pytest.raises(InputError) as err:
        Config.load(str(config), {})
    assert "\n" not in str(err.value)


def test_a_good_config_still_loads(tmp_path: Path):
    config = tmp_path / "logsense.toml"
    config.write_text('paths = ["/var/log/libvirt"]\nwindow = 60\nhost = "kvm01"\n[[sink]]\ntype = "stdout"\n')
    cfg = Config.load(str(config), {})
    assert (cfg.paths, cfg.window, cfg.host, cfg.sinks) == (["/var/log/libvirt"], 60, "kvm01", [{"type": "stdout"}])


@pytest.mark.slow
def test_sighup_with_nan_window_and_bad_types_keeps_the_old_config(tmp_path: Path):
    logs = tmp_path / "log"
    (logs / "qemu").mkdir(parents=True)
    (tmp_path / "state").mkdir()
    config = tmp_path / "logsense.toml"
    config.write_text(f"paths = [{str(logs)!r}]\nwindow = 1\n")
    w = Watch("--config", str(config), "--no-journal", "--state-dir", str(tmp_path / "state"), "--host", "kvm01",
              "--tz", "UTC").ready()
    for n, (bad, why) in enumerate([("window = nan", "window must be"), ("paths = [1, 2]", "paths: expected"),
                                    ('sink = ["stdout"]', "sinks: expected")], 1):
        config.write_text(bad + "\n")
        w.proc.send_signal(signal.SIGHUP)
        w.wait_err(lambda _line, n=n: sum("reload failed" in e for e in w.err) >= n)
        assert why in w.err[-1] and "keeping the old one" in w.err[-1]
    append(logs / "qemu" / "web01.log", qemu_line(GUEST_RAM))
    opened = w.wait(lambda o: o["status"] == "open")
    assert opened["vm"] == "web01"
    assert w.wait(lambda o: o["status"] == "resolved", timeout=10.0)["id"] == opened["id"]  # still window 1 s
    assert w.proc.poll() is None and w.stop() == 0
