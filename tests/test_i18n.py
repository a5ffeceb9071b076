"""Chinese output (--lang zh, LANG=zh_CN.UTF-8): the engine's words table, the sample outage in
every format, CJK widths in the text report, the daemon's stdout sink."""

from __future__ import annotations

import io
import json
import os
import re
import string
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import LOGSENSE, ROOT, logsense
from rich.cells import cell_len
from test_daemon_helpers import OOM, Watch, append, syslog_line

from logsense import SAMPLE, report, vms_report
from logsense.catalogue import load_catalogue
from logsense.daemon import Config
from logsense.i18n import LANGS, MESSAGES, env_lang, t
from logsense.lifecycle import timeline
from logsense.pipeline import InputError

RECORD_FIELDS = ["故障发生时间", "故障现象描述", "影响范围评估", "处理步骤记录", "恢复时间记录", "根本原因分析",
                 "预防措施建议"]


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_engine_word_is_in_every_language_with_the_same_placeholders():
    en = MESSAGES["en"]
    for lang in LANGS:
        assert set(MESSAGES[lang]) == set(en), f"{lang}: {set(en) ^ set(MESSAGES[lang])}"
        for key, text in MESSAGES[lang].items():
            assert text, f"{lang} {key} is empty"
            assert placeholders(text) == placeholders(en[key]), f"{lang} {key}"
    assert t("title.vm", "zh", vm="app01", what=t("outcome.failed_start", "zh"), cause="磁盘镜像不存在") \
        == "app01 启动失败：磁盘镜像不存在"
    assert t("diag.start_vm", "zh") == "virsh start {vm} # 它的报错会指明原因"  # {vm} kept for the caller


@pytest.mark.parametrize(("env", "lang"), [
    ({"LANG": "zh_CN.UTF-8"}, "zh"), ({"LANG": "zh_TW.Big5"}, "zh"), ({"LANG": "C.UTF-8"}, "en"),
    ({"LANG": "en_US.UTF-8", "LC_MESSAGES": "zh_CN.UTF-8"}, "zh"),
    ({"LANG": "zh_CN.UTF-8", "LC_ALL": "C"}, "en"), ({"LANGUAGE": "zh_CN:en_US", "LANG": "C"}, "zh"),
    ({"LANG": "de_DE.UTF-8"}, "en"), ({}, "en"),
])
def test_the_locale_picks_the_language(env: dict[str, str], lang: str):
    assert env_lang(env) == lang


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")}
    return subprocess.run([*LOGSENSE, *args], capture_output=True, text=True, cwd=ROOT,
                          env={**clean, **(env or {"LANG": "C.UTF-8"})})


@pytest.fixture(scope="module")
def zh_incidents() -> list[dict]:
    proc = run("analyze", "--format", "json", "--tz", "UTC", "--lang", "zh", str(SAMPLE))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["incidents"]


def test_sample_outage_in_chinese_json(zh_incidents: list[dict]):
    by_root = {i["root_cause"]: i for i in zh_incidents}
    disk = by_root["libvirt.disk_image.storage-file-missing"]
    assert disk["title"] == "app01 启动失败：磁盘镜像不存在 —— 共 2 次"
    assert disk["explanation"].startswith("虚拟机配置引用的磁盘镜像 /var/lib/libvirt/images/app01.qcow2 不存在。")
    assert "结果：app01 启动失败。" in disk["explanation"]
    assert disk["remediation"][0] == ("从备份或快照恢复该镜像，或在域 XML 中修正 <source file=...> 路径"
                                      "（virsh edit app01）。")
    oom = by_root["kernel.memory.oom-killed-qemu"]
    assert oom["title"] == "kvm01：宿主机内存不足：QEMU 被 OOM killer 杀掉（影响 db01）"
    assert "已知故障链：内核 OOM killer 为释放宿主机内存杀掉了 QEMU 进程" in oom["explanation"]
    cat = load_catalogue()
    for inc in zh_incidents:
        p = cat.by_id.get(inc["root_cause"])
        if p is None:
            continue
        english = p.title
        assert english not in inc["title"] and english not in inc["explanation"], inc["title"]
        assert not any(step in inc["remediation"] for step in p.remediation), inc["root_cause"]
        assert p.translations["zh"]["title"] in inc["title"] or inc["category"] == "host"


def test_english_is_still_the_default():
    out = run("analyze", "--format", "json", "--tz", "UTC", str(SAMPLE)).stdout
    titles = [i["title"] for i in json.loads(out)["incidents"]]
    assert "app01 failed to start: disk image missing — 2 times" in titles


def test_zh_locale_selects_chinese_and_a_bad_lang_is_a_usage_error():
    def titles(proc: subprocess.CompletedProcess) -> list[str]:
        return [json.loads(line)["title"] for line in proc.stdout.splitlines()]

    zh = run("analyze", "--format", "jsonl", "--tz", "UTC", str(SAMPLE), env={"LANG": "zh_CN.UTF-8"})
    assert "app01 启动失败：磁盘镜像不存在 —— 共 2 次" in titles(zh)
    english = run("analyze", "--format", "jsonl", "--tz", "UTC", "--lang", "en", str(SAMPLE),
                  env={"LANG": "zh_CN.UTF-8"})
    assert "app01 failed to start: disk image missing — 2 times" in titles(english)  # the flag wins
    bad = run("analyze", "--lang", "fr", str(SAMPLE))
    assert bad.returncode == 2 and bad.stderr == "logsense: error: --lang is one of en, zh, not 'fr'\n"


def test_demo_text_markdown_and_html_in_chinese():
    text = logsense("demo", "--lang", "zh").stdout
    assert "严重 app01 启动失败：磁盘镜像不存在" in text and "处理" in text and "确认" in text
    assert "宿主机内存耗尽，内核 OOM killer 杀掉了 QEMU 进程" in text.replace("│", "").replace("\n", "")
    md = logsense("demo", "--lang", "zh", "--format", "markdown").stdout
    assert md.startswith("# logsense 报告：")
    assert "| 严重程度 | 最早出现 | 范围 | 虚拟机 | 故障数 | 标题 |" in md
    assert "## app01 启动失败：磁盘镜像不存在 —— 共 2 次" in md and "\n**处理**\n" in md
    assert "- **严重程度:** 严重" in md
    html = logsense("demo", "--lang", "zh", "--format", "html").stdout
    assert html.startswith("<!DOCTYPE html><html lang='zh'>")
    assert "<h3>处理</h3>" in html and "<h2>虚拟机生命周期</h2>" in html and "磁盘镜像不存在" in html


def test_incident_record_uses_the_guides_field_names():
    rec = run("analyze", "--format", "record", "--tz", "UTC", "--lang", "zh", str(SAMPLE)).stdout
    first = rec.split("\n---\n")[0]
    for name in RECORD_FIELDS:
        assert f"\n## {name}\n" in first, name
    assert first.startswith("# 故障记录：")
    assert "- [ ] 从备份或快照恢复该镜像" in first
    assert "监控：检查每台虚拟机的磁盘是否存在且可读" in first  # disk_image prevention advice
    assert "Time of failure" not in rec and "Prevention" not in rec


def test_text_report_at_80_columns_fits_cjk(zh_incidents: list[dict]):
    for color in (False, True):  # plain lines (a file, a pipe) and rich panels (a terminal)
        buf = io.StringIO()
        report.write_text(buf, zh_incidents, {"files_read": 3, "lines_read": 90}, [], color=color, lang="zh",
                          width=80)
        lines = re.sub(r"\x1b\[[0-9;]*m", "", buf.getvalue()).splitlines()
        assert any("磁盘镜像不存在" in line for line in lines) and any("原因" in line for line in lines)
        widest = max(lines, key=cell_len)
        assert cell_len(widest) <= 80, widest
        assert not any(line.lstrip(" │").startswith(("。", "，", "）")) for line in lines)  # no stop starts a line
    assert any(cell_len(line) > 70 for line in lines)  # the width is used, not wasted


def test_vms_table_aligns_chinese_headings_by_terminal_cells():
    from logsense.pipeline import Options, Reader, parse_zone

    evs = Reader(Options(tz=parse_zone("UTC"))).events([str(SAMPLE)])
    buf = io.StringIO()
    vms_report.write_text(buf, timeline(evs), "zh")
    head, *rows = buf.getvalue().splitlines()
    assert head.startswith("虚拟机") and "宿主机" in head
    column = cell_len(head[:head.index("宿主机")])
    vm_rows = [r for r in rows if "kvm01" in r and not r.startswith("宿主机")]
    assert vm_rows and all(cell_len(r[:r.index("kvm01")]) == column for r in vm_rows)
    assert any("已关机" in r or "运行中" in r for r in vm_rows)


def test_config_key_lang(tmp_path: Path):
    conf = tmp_path / "logsense.toml"
    conf.write_text('lang = "zh"\n')
    assert Config.load(str(conf), {}).lang == "zh"
    conf.write_text('lang = "fr"\n')
    with pytest.raises(InputError, match="lang is one of en, zh"):
        Config.load(str(conf), {})
    conf.write_text('lang = "zh"\n')
    out = run("analyze", "-f", "jsonl", "--tz", "UTC", "--config", str(conf), str(SAMPLE)).stdout
    assert "app01 启动失败：磁盘镜像不存在 —— 共 2 次" in [json.loads(line)["title"] for line in out.splitlines()]


def test_daemon_stdout_sink_speaks_chinese(tmp_path: Path):
    logs = tmp_path / "log"
    logs.mkdir()
    (tmp_path / "state").mkdir()
    messages = logs / "messages"
    messages.write_text(syslog_line("Linux version 6.1.0-18-amd64", prog="kernel"))
    w = Watch(str(logs), "--no-journal", "--state-dir", str(tmp_path / "state"), "--host", "kvm01", "--tz", "UTC",
              "--window", "30", "--lang", "zh").ready()
    try:
        append(messages, syslog_line(OOM))
        inc = w.wait(lambda o: o.get("status") == "open")
        assert inc["title"].startswith("kvm01：宿主机内存不足")
        assert inc["explanation"].startswith("宿主机内存耗尽，内核 OOM killer 杀掉了 QEMU 进程 28932")
        assert inc["remediation"][0].startswith("降低内存超分")
    finally:
        assert w.stop() == 0


def test_events_text_words(tmp_path: Path):
    log = tmp_path / "libvirtd.log"
    log.write_text("2024-03-05 10:00:00.000+0000: 1: error : fooBar:12 : internal error: the flux capacitor broke\n")
    out = subprocess.run([sys.executable, "-m", "logsense", "events", "--format", "text", "--lang", "zh", str(log)],
                         capture_output=True, text=True, cwd=ROOT).stdout
    assert " 未识别  internal error: the flux capacitor broke" in out


def test_email_sink_labels_in_chinese(zh_incidents: list[dict]):
    from logsense.sinks import make_sink

    sink = make_sink({"type": "email", "to": "oncall@example.org"})
    sink.lang = "zh"  # as the daemon sets it from --lang / the config
    disk = next(i for i in zh_incidents if i["root_cause"] == "libvirt.disk_image.storage-file-missing")
    msg = sink.message(disk)
    assert msg["Subject"] == f"[logsense] 已解决 严重: {disk['title']}"
    body = msg.get_content()
    assert f"状态：已解决（第 {disk['version']} 版）" in body and "\n处理措施：\n  - 从备份或快照恢复该镜像" in body
    assert "Remediation:" not in body


def test_stdout_text_sink_line_in_chinese(zh_incidents: list[dict]):
    from logsense.sinks import text_line

    disk = next(i for i in zh_incidents if i["root_cause"] == "libvirt.disk_image.storage-file-missing")
    line = text_line(disk, "zh")
    assert line.startswith(f"{disk['last_seen'][:19]} 已解决   严重     app01: app01 启动失败：磁盘镜像不存在")
    english = text_line({**disk, "title": "t"}, "en")
    assert english.startswith(f"{disk['last_seen'][:19]} resolved critical app01: t")


def test_a_chinese_sentence_naming_a_missing_value_is_dropped_alone():
    from logsense.catalogue import render

    cause = load_catalogue().by_id["libvirt.disk_image.backing-file-missing"].translations["zh"]["cause"]
    assert render(cause + "请检查 {vm}。", {"top": "/i/o.qcow2", "path": "/i/b.qcow2"}) == \
        "覆盖层镜像 /i/o.qcow2 基于 /i/b.qcow2，而该基础镜像已不存在（被移动、改名或删除），整条镜像链都无法使用。"
