"""The command line as an admin meets it: version, help, completion, man page, usage errors, formats."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES, ROOT, logsense

from logsense import __version__

SAMPLE = FIXTURES / "sample-outage"
ENTRY_POINT = Path(sys.executable).parent / "logsense"


def entry_point(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The installed `logsense` script (completion keys on its name), running this tree's code."""
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([str(ENTRY_POINT), *args], capture_output=True, text=True, env=full, cwd=ROOT)


def test_version():
    proc = logsense("--version")
    assert proc.returncode == 0 and proc.stdout == f"logsense {__version__}\n"


@pytest.mark.parametrize("command", [[], ["analyze"], ["events"], ["watch"], ["demo"], ["catalogue", "test"]])
def test_help_shows_no_python_types(command):
    out = logsense(*command, "--help").stdout
    assert "Usage: logsense" in out
    assert not re.search(r"<(list|str|int|float|bool|path)\b", out), out


def test_each_command_offers_only_the_formats_it_writes():
    assert "<text|json|jsonl|parquet>" in logsense("events", "--help").stdout
    analyze = logsense("analyze", "--help").stdout
    assert "<text|json|jsonl|markdown|html|record>" in analyze and "parquet" not in analyze
    assert "<text|json|markdown|html>" in logsense("vms", "--help").stdout
    assert "<critical|major|minor>" in analyze  # --fail-on's choices
    assert re.search(r"-o, --output FILE\s+Write the output to FILE", analyze)


@pytest.mark.parametrize("args", [["events", "-f", "html", str(SAMPLE)], ["analyze", "-f", "parquet", str(SAMPLE)],
                                  ["analyze", "--fail-on", "fatal", str(SAMPLE)], ["analyze", "--bogus"],
                                  ["catalogue", "show"]])
def test_usage_errors_are_one_line_exit_2(args):
    proc = logsense(*args, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("logsense: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert f"(see 'logsense {args[0]}" in proc.stderr


def test_text_is_the_default_also_into_a_pipe():
    out = logsense("analyze", str(SAMPLE)).stdout  # captured: stdout is a pipe
    assert not out.lstrip().startswith("{") and "web01" in out
    events = logsense("events", str(SAMPLE)).stdout
    assert not events.startswith("{") and "libvirt.disk" in events


def test_shell_completion_completes_commands_and_choices():
    env = {"_LOGSENSE_COMPLETE": "complete_bash", "COMP_WORDS": "logsense an", "COMP_CWORD": "1"}
    assert entry_point(env=env).stdout.split() == ["analyze"]
    env.update(COMP_WORDS="logsense analyze --fail-on ", COMP_CWORD="3")
    assert entry_point(env=env).stdout.split() == ["critical", "major", "minor"]
    assert "_logsense_completion" in entry_point("--show-completion", "bash").stdout


def test_man_page_is_made_from_the_help_and_renders_cleanly(tmp_path: Path):
    page = logsense("man").stdout
    assert page.startswith(".TH LOGSENSE 1")
    for text in ("analyze", "catalogue check", "\\-\\-fail\\-on", "EXIT STATUS", "LOGSENSE_CONFIG"):
        assert text in page
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed")
    (tmp_path / "logsense.1").write_text(page)
    proc = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(tmp_path / "logsense.1")],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == ""  # -ww: every warning; -z: no output, only the check


def test_unit_runs_the_binary_the_readme_installs():
    readme = (ROOT / "README.md").read_text()
    bin_dir = re.search(r"PIPX_BIN_DIR=(\S+) pipx install", readme).group(1)
    unit = logsense("contrib", "logsense.service").stdout
    assert re.search(rf"^ExecStart={re.escape(bin_dir)}/logsense watch ", unit, re.M)
    assert {"logsense.service", "logsense.toml", "logsense-network.conf"} <= set(logsense("contrib").stdout.split())


def test_readme_keeps_the_two_developer_commands_first():
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```sh\n", 1)[1].split("```", 1)[0]
    assert first_block.startswith("bash dev.sh demo") and "\nbash dev.sh test" in first_block
    dev = (ROOT / "dev.sh").read_text()
    assert "demo) setup; .venv/bin/logsense demo" in dev and "DPkg::Lock::Timeout=600" in dev
