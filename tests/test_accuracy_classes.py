"""Classes of misses the real corpus taught (issue 10), each shown on a real line of fixtures/real/."""

from __future__ import annotations

from conftest import FIXTURES, read_events

from logsense.attribution import EntityMap
from logsense.catalogue import load_catalogue
from logsense.correlator import correlate
from logsense.model import EPOCH, Event, Record

REAL = FIXTURES / "real"
CAT = load_catalogue()


def test_a_wrapper_yields_to_the_cause_it_wraps_and_lends_it_its_severity():
    # tplibvirt-svirt-hugepages-eacces-1 wording, older QEMU (kimchi-gluster-image-perm-1)
    line = ("internal error: process exited while connecting to monitor: qemu-kvm: -drive file=/mnt/rvol/x.img,"
            "if=none: could not open disk image /mnt/rvol/x.img: Permission denied")
    m = CAT.match(line, "libvirtd")
    assert m.pattern.id == "errno.permission.permission-denied"
    assert m.wrapper is not None and m.wrapper.id == "libvirt.virt_layer.process-exited-connecting-monitor"
    evs, _ = read_events([REAL / "kimchi-gluster-image-perm-1" / "virsh.txt"])
    top = correlate(evs)[0].to_dict()
    assert (top["category"], top["severity"]) == ("permission", "critical")


def test_a_symptom_that_reads_its_errno_keeps_it():
    # a client disconnect: EIO of the socket, not of storage
    m = CAT.match("End of file while reading data: Input/output error", "libvirtd")
    assert m.pattern.id == "libvirt.virt_layer.rpc-connection-lost"


def test_bare_errno_messages_are_at_least_their_category_in_every_source():
    for text, category in (("Permission denied (Libvirt::Error)", "permission"),
                           ("ioctl(KVM_CREATE_VM) failed: 12 Cannot allocate memory", "memory"),
                           ("qemu-img: error while reading sector 9338878: Input/output error", "storage"),
                           ("vfio:failed to open /dev/vfio/vfio: Operation not permitted", "permission")):
        for source in ("libvirtd", "qemu", "syslog", "journal"):
            m = CAT.match(text, source)
            assert m is not None and m.pattern.category == category, (text, source)


def test_vm_names_in_the_words_clients_and_tools_print():
    ents = EntityMap()
    for text, vm in (("Failed to start domain alma-8-hello", "alma-8-hello"),
                     ("error: Failed to start domain 'avocado-vt-vm1'", "avocado-vt-vm1"),
                     ("Failed to define domain from /tmp/x.xml", None),
                     ("LibvirtXMLError: Failed to define avocado-vt-vm1 for reason:error: x", "avocado-vt-vm1"),
                     ("Cannot start job (query, none, none) in API remoteDispatchDomainGetXMLDesc for domain win10",
                      "win10"),
                     ("Problem destroying the 'wrksp-32735' VM: Timed out", "wrksp-32735"),
                     ("TASK [vm_set : Start vm VM0100] ****", "VM0100"),
                     ("KCHVM0019E: Unable to start virtual machine UbuntuWorkMachine. Details: x", "UbuntuWorkMachine"),
                     ("'/bin/virsh -c 'qemu:///system' screenshot avocado-vt-vm1 /dev/shm/s.ppm'", "avocado-vt-vm1"),
                     ("(openshift) Failed to start: virError(Code=1, Domain=10, Message='x')", "openshift")):
        assert ents.vm_in_message(text) == vm, text


def test_a_uuid_named_once_with_its_name_attributes_apparmor_denials():
    # terraform-apparmor-image-home-1: the taint line links uuid and name; the denial names the uuid
    evs, _ = read_events([REAL / "terraform-apparmor-image-home-1" / "messages"])
    denial = next(e for e in evs if e.pattern_id == "security.permission.apparmor-guest-denied")
    assert denial.vm == "master-0"


def test_a_paste_naming_one_vm_gives_it_to_its_lines():
    ents = EntityMap()
    lines = ["internal error: qemu unexpectedly closed the monitor", "Failed to start domain mail"]
    recs = [Record(ts=EPOCH, source="libvirtd", message=m, raw=m, file="virsh.txt", line=n, untimed=True)
            for n, m in enumerate(lines, 1)]
    for r in recs:
        r.extra["pasted"] = True
        ents.learn(r)
    assert ents.resolve(Event(recs[0])) == ("mail", "named in the pasted text virsh.txt")


def test_a_users_permission_denied_in_syslog_is_context_but_a_wrapped_one_is_the_cause():
    from logsense.parsers import FileContext, SyslogParser
    from logsense.pipeline import classify

    parse = SyslogParser(FileContext(file="messages", year=2024)).parse
    bash = classify(parse("Mar  5 10:00:04 kvm01 bash[2301]: /home/bob/run.sh: line 3: /tmp/out: Permission denied", 1),
                    CAT)
    assert bash.role == "context" and bash.category == "permission"
    wrapped = classify(parse("Mar  5 10:00:04 kvm01 libvirtd[1432]: internal error: process exited while connecting "
                             "to monitor: qemu-kvm: -drive file=/mnt/rvol/x.img: could not open disk image "
                             "/mnt/rvol/x.img: Permission denied", 2), CAT)
    assert (wrapped.role, wrapped.category, wrapped.severity) == ("cause", "permission", "critical")


def test_a_lock_timeout_naming_no_vm_takes_the_one_named_just_above():
    # cape-lock-timeout-then-abrt-1: "Cannot start job ... for domain win10" then the timeout
    evs, _ = read_events([REAL / "cape-lock-timeout-then-abrt-1" / "journal.txt"], year=2024)
    lock = next(e for e in evs if e.pattern_id == "libvirt.virt_layer.state-change-lock")
    assert lock.vm == "win10"


def test_the_errno_decides_between_memory_and_permission():
    eacces = CAT.match("qemu-kvm: can't open backing store /dev/hugepages/libvirt/qemu/2-vm1 for guest RAM: "
                       "Permission denied", "qemu")
    enomem = CAT.match("qemu-system-x86_64: failed to initialize kvm: Cannot allocate memory", "qemu")
    assert (eacces.pattern.category, enomem.pattern.category) == ("permission", "memory")


def test_one_host_by_its_fqdn_and_its_short_name_is_one_host():
    from logsense.ingest.formats import one_host

    assert one_host("kvm01.example.com", "kvm01") == "kvm01"
    assert one_host("kvm01", "KVM01.example.com") == "KVM01.example.com"
    assert one_host("kvm02", "kvm01") == "kvm02"  # a log server's lines of another machine stay apart
    assert one_host(None, "kvm01") == "kvm01"


def test_a_failure_without_its_cause_says_where_the_cause_would_be():
    from logsense.parsers import FileContext, LibvirtdParser
    from logsense.pipeline import classify

    line = ("2024-03-05 10:11:12.345+0000: 1234: error : qemuProcessReportLogError:1971 : internal error: "
            "qemu unexpectedly closed the monitor (vm='web01')")
    ev = classify(LibvirtdParser(FileContext(file="libvirtd.log")).parse(line, 1), CAT)
    ev.vm = "web01"
    inc = correlate([ev])[0].to_dict()
    assert "cause not in the logs" in inc["title"]
    assert "/var/log/libvirt/qemu/web01.log" in inc["explanation"]


def test_two_unrelated_host_causes_seconds_apart_are_two_incidents():
    from logsense.parsers import FileContext, SyslogParser
    from logsense.pipeline import classify

    parse = SyslogParser(FileContext(file="messages", year=2024)).parse
    lines = ["Sep 16 00:06:27 kvm01 systemd[1]: libvirtd-tcp.socket: Failed to listen on sockets: "
             "Cannot assign requested address",
             "Sep 16 00:06:29 kvm01 kernel: [ 9327.470501] e1000e 0000:00:19.0 eth0: Detected Hardware Unit Hang:"]
    evs = [classify(parse(line, n), CAT) for n, line in enumerate(lines, 1)]
    assert [e.category for e in evs] == ["virt_layer", "network"]
    assert sorted(i.to_dict()["category"] for i in correlate(evs)) == ["network", "virt_layer"]
