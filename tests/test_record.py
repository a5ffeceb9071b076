"""`logsense analyze --format record`: the guide's incident record (§9.4), one per incident,
on the sample outage and the lab's real libvirt/QEMU runs; its words and prevention advice
are catalogue data, checked by `catalogue check`; log text cannot inject Markdown."""

from __future__ import annotations

import io
import json
import re
import shutil
import tomllib
from pathlib import Path

import pytest
from conftest import FIXTURES, logsense, read_events

from logsense import SAMPLE
from logsense.catalogue import BUILTIN_DIR
from logsense.correlator import correlate
from logsense.model import CATEGORIES
from logsense.record import load_record_data, record_problems, render, write_records

HEADINGS = ["## Time of failure", "## Symptoms", "## Scope of impact", "## Steps taken", "## Recovery time",
            "## Root cause", "## Prevention"]
DATA = load_record_data()
LAB_CASES = sorted(p.name for p in (FIXTURES / "lab").iterdir() if (p / "expected.json").exists())


def incidents_of(path: Path) -> list[dict]:
    return [i.to_dict() for i in correlate(read_events([path])[0])]


def records(text: str) -> list[str]:
    return text.split("\n---\n\n")


def section(record: str, heading: str) -> str:
    start = record.index(heading + "\n")
    end = record.find("\n## ", start + 1)
    return record[start:end if end >= 0 else None]


def assert_structure(record: str, inc: dict) -> None:
    positions = [record.index(h + "\n") for h in HEADINGS]
    assert positions == sorted(positions), "the guide's order"
    assert record.startswith(f"# Incident record: {inc['title'][:20]}")
    assert f"`{inc['id']}`" in record
    symptoms = section(record, "## Symptoms")
    for vm in {e["vm"] for e in inc["evidence"] if e["vm"]}:
        assert f"\n### {vm}\n" in symptoms
    steps = section(record, "## Steps taken")
    assert steps.count("- [ ] ") == len(inc["diagnostics"]) + len(inc["remediation"])
    for advice in DATA.prevention[inc["category"]]["en"]:
        assert advice.split(":")[0] in section(record, "## Prevention")


def test_the_sample_outage_gives_one_record_per_incident_in_the_guides_order():
    incs = incidents_of(SAMPLE)
    out = logsense("analyze", "--format", "record", "--tz", "UTC", str(SAMPLE)).stdout
    recs = records(out)
    assert len(recs) == len(incs) == 5
    for rec, inc in zip(recs, incs, strict=True):
        assert_structure(rec, inc)


def test_recovery_time_comes_from_the_logs_or_is_left_to_fill():
    incs = incidents_of(SAMPLE)
    oom = next(i for i in incs if i["root_cause"] == "kernel.memory.oom-killed-qemu")
    disk = next(i for i in incs if i["category"] == "disk_image")
    recovery = section(render(oom, DATA), "## Recovery time")
    assert "Recovered at 2024-03-05 10:07:31 UTC (from the logs), 2 min 21 s after the first sign." in recovery
    assert "Recovered at: ________ (not in the logs: fill in)." in section(render(disk, DATA), "## Recovery time")


def test_scope_lists_host_vms_and_the_services_whose_logs_show_it():
    oom = next(i for i in incidents_of(SAMPLE) if i["root_cause"] == "kernel.memory.oom-killed-qemu")
    scope = section(render(oom, DATA), "## Scope of impact")
    assert "- Host: kvm01 (host-wide: every VM listed)" in scope
    assert "- VMs: db01" in scope
    assert "kernel and system log" in scope and "QEMU (the VM's log)" in scope


def test_root_cause_carries_the_explanation_and_its_evidence_fenced():
    disk = next(i for i in incidents_of(SAMPLE) if i["category"] == "disk_image")
    root = section(render(disk, DATA), "## Root cause")
    assert disk["explanation"].split(".")[0] in root
    assert "`libvirt.disk_image.storage-file-missing`" in root
    fence = re.search(r"```text\n(.*?)```", root, re.S)
    assert fence and "Cannot access storage file '/var/lib/libvirt/images/app01.qcow2'" in fence.group(1)


@pytest.mark.parametrize("case", LAB_CASES)
def test_lab_runs_give_well_formed_records(case: str):
    incs = incidents_of(FIXTURES / "lab" / case)
    out = io.StringIO()
    write_records(out, incs)
    recs = records(out.getvalue()) if incs else []
    assert len(recs) == len(incs)
    for rec, inc in zip(recs, incs, strict=True):
        assert_structure(rec, inc)


def test_log_text_cannot_inject_markdown_or_html():
    disk = next(i for i in incidents_of(SAMPLE) if i["category"] == "disk_image")
    evil = "x\n# Injected heading\n```\n<img src=x onerror=alert(1)> [link](http://evil) `code` | cell"
    inc = {**disk, "title": evil, "explanation": evil, "affected_vms": [evil], "remediation": [evil],
           "diagnostics": ["ls " + evil], "evidence": [{**e, "message": evil, "vm": evil} for e in disk["evidence"]]}
    rec = render(inc, DATA)
    lines = rec.splitlines()
    assert not any(line.startswith("# Injected") for line in lines)
    fences = [line for line in lines if line.startswith("```")]
    assert fences == ["````text", "````"]  # the evidence block, its fence longer than any run in it
    before, rest = rec.split("````text\n")
    after = rest.split("\n````\n")[1]
    outside_code = re.sub(r"(`+).+?\1", "", before + after)
    assert "<img" not in outside_code.replace("\\<img", "")  # raw HTML only inside code (not rendered)
    assert "](http" not in outside_code.replace("\\](http", "")
    assert [line for line in lines if line.startswith("#")] == [line for line in lines if re.match(
        r"#+ (Incident record|Time of failure|Symptoms|Scope|Steps|Recovery|Root cause|Prevention|x )", line)]


def test_the_built_in_record_data_passes_and_covers_every_category():
    assert record_problems() == []
    assert set(DATA.prevention) == set(CATEGORIES)
    proc = logsense("catalogue", "check", "--no-timing")
    assert proc.returncode == 0, proc.stderr


def test_catalogue_check_fails_when_a_category_or_a_language_lacks_its_words(tmp_path: Path):
    site = tmp_path / "site"
    site.mkdir()
    text = (BUILTIN_DIR / "record.toml").read_text()
    text = text.replace("[prevention.guest]\nen = [", "[prevention.guest]\nold = [")
    # zh with one heading only, and without its memory advice
    text = re.sub(r"\[record\.zh\]\n.*?\n\n\[record\.zh\.source\]\n.*?\n\n",
                  '[record.zh]\ndocument = "故障记录：{title}"\n\n', text, flags=re.S)
    text = re.sub(r"(\[prevention\.memory\]\nen = \[\n(?:.*\n)*?\]\n)zh = \[\n(?:.*\n)*?\]\n", r"\1", text)
    (site / "record.toml").write_text(text)
    problems = record_problems([site])
    assert "record.toml: [prevention.guest] has no en advice (a list of lines)" in problems
    assert any(p.startswith("record.toml: [record.zh] lacks ") and "time_of_failure" in p for p in problems)
    assert "record.toml: [prevention.memory] has no zh advice (a list of lines)" in problems
    proc = logsense("catalogue", "check", "--no-timing", "--catalogue", str(site), check=False)
    assert proc.returncode == 1 and "[prevention.guest] has no en advice" in proc.stderr


def test_a_language_is_added_as_data(tmp_path: Path):
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(BUILTIN_DIR / "record.toml", site / "record.toml")
    data = tomllib.loads((site / "record.toml").read_text())
    words = {k: v for k, v in data["record"]["en"].items() if isinstance(v, str)}
    extra = "\n[record.xx]\n" + "".join(f"{k} = {json.dumps('XX ' + v)}\n" for k, v in words.items())
    extra += "[record.xx.source]\n" + "".join(f'{k} = "XX {k}"\n' for k in data["record"]["en"]["source"])
    (site / "record.toml").write_text((site / "record.toml").read_text().replace(
        "en = [\n", 'xx = ["XX advice"]\nen = [\n') + extra)
    assert record_problems([site]) == []
    disk = next(i for i in incidents_of(SAMPLE) if i["category"] == "disk_image")
    rec = render(disk, load_record_data([site]), "xx")
    assert "## XX Time of failure" in rec and "- XX advice" in rec and "XX libvirtd" in rec


def test_events_has_no_record_format_and_says_where_it_is():
    proc = logsense("events", "--format", "record", str(SAMPLE), check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "'record' is not one of" in proc.stderr


def test_record_goes_to_a_file_with_o(tmp_path: Path):
    out = tmp_path / "records.md"
    logsense("analyze", "--format", "record", "-o", str(out), str(FIXTURES / "lab" / "inactive-network"))
    text = out.read_text()
    assert text.count("# Incident record: ") == 1 and "For `network`:" in text
