"""Which VM a line is about, learnt from the logs and domain XML, with the reason shown."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from logsense.attribution import EntityMap, decode_scope
from logsense.catalogue import load_catalogue
from logsense.model import Record
from logsense.pipeline import classify

CAT = load_catalogue()
XML = """<domain type='kvm' id='7'>
  <name>web01</name>
  <uuid>0d2bc6a8-0c0c-4a5e-9d2a-1c2f3e4d5a6b</uuid>
  <devices>
    <disk type='file' device='disk'><source file='/srv/images/web01.qcow2'/><target dev='vda'/></disk>
    <interface type='bridge'><source bridge='br0'/><target dev='vnet3'/></interface>
  </devices>
  <seclabel type='dynamic' model='selinux' relabel='yes'>
    <label>system_u:system_r:svirt_t:s0:c12,c34</label>
    <imagelabel>system_u:object_r:svirt_image_t:s0:c12,c34</imagelabel>
  </seclabel>
</domain>
"""


def event(message: str, source: str = "syslog"):
    ev = classify(Record(ts=datetime(2024, 3, 5, tzinfo=UTC), source=source, message=message), CAT)
    assert ev is not None and ev.pattern is not None, message
    return ev


def entities(tmp_path: Path) -> EntityMap:
    (tmp_path / "web01.xml").write_text(XML)
    ents = EntityMap()
    ents.learn_domain_xml(tmp_path / "web01.xml")
    return ents


def test_apparmor_profile_uuid_names_the_vm(tmp_path):
    ev = event('audit: type=1400 audit(1709633472.123:456): apparmor="DENIED" operation="open" '
               'profile="libvirt-0d2bc6a8-0c0c-4a5e-9d2a-1c2f3e4d5a6b" name="/srv/images/web01.qcow2" pid=1234 '
               'comm="qemu-system-x86" requested_mask="r" denied_mask="r" fsuid=64055 ouid=0')
    vm, why = entities(tmp_path).resolve(ev)
    assert vm == "web01" and "domain XML" in why


def test_selinux_mcs_label_names_the_vm(tmp_path):
    ev = event('audit: type=1400 audit(1709633472.123:456): avc:  denied  { read } for  pid=1234 comm="qemu-kvm" '
               'name="other.qcow2" dev="dm-0" ino=1234 scontext=system_u:system_r:svirt_t:s0:c12,c34 '
               'tcontext=system_u:object_r:default_t:s0 tclass=file permissive=0')
    vm, why = entities(tmp_path).resolve(ev)
    assert vm == "web01" and why.startswith("SELinux label s0:c12,c34")


def test_tap_device_and_disk_path_name_the_vm(tmp_path):
    ents = entities(tmp_path)
    ev = event("Cannot access storage file '/srv/images/web01.qcow2': No such file or directory", "libvirtd")
    assert ents.resolve(ev)[0] == "web01"
    port = event("br0: port 2(vnet3) entered disabled state")
    assert ents.resolve(port) == ("web01", "device vnet3: domain XML web01.xml")


def test_oom_cgroup_scope_decodes_systemd_escapes():
    assert decode_scope("/machine.slice/machine-qemu\\x2d3\\x2dweb\\x2d01.scope") == "web-01"
    assert decode_scope("machine-qemu-12-db01.scope") == "db01"


def test_a_disk_two_vms_use_names_neither(tmp_path):
    ents = entities(tmp_path)
    other = tmp_path / "web02.xml"
    other.write_text(XML.replace("web01</name>", "web02</name>").replace("0d2bc6a8", "1d2bc6a8"))
    ents.learn_domain_xml(other)
    ev = event("Cannot access storage file '/srv/images/web01.qcow2': No such file or directory", "libvirtd")
    assert ents.resolve(ev) == (None, "")
    assert ("path", "/srv/images/web01.qcow2", "web01", "used by web01 and web02: names neither") in ents.table()
