"""The engine's own words (incident titles, explanation sentences, report headings, lifecycle
words) in every language, in one table; the catalogue's texts live in patterns/<lang>/.

`t(key, lang, **fields)` gives the text in `lang` (English where a language lacks it), with
`{fields}` filled; a `{name}` with no field given stays as written (diagnostics keep `{vm}`
for the caller to fill). tests/test_i18n.py holds every key to every language.
"""

from __future__ import annotations

import os
from typing import Any

LANGS = ("en", "zh")
DEFAULT_LANG = "en"

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        # correlator: what happened to the VM
        "outcome.failed_start": "failed to start",
        "outcome.crashed": "crashed",
        "outcome.paused": "was paused or lost its disk",
        "outcome.panicked": "guest panicked",
        "outcome.errors": "had errors",
        # correlator: titles
        "title.host_default": "host",
        "title.unknown_vm": "unknown VM",
        "title.host": "{host}: {cause}",
        "title.vm": "{vm} {what}: {cause}",
        "title.vm_unexplained": "{vm} {what}: cause not in the logs ({cause})",
        "title.no_vm_line": " (no line names the VM)",
        "title.affects": " (affects {vms})",
        "title.times": " — {n} times",
        "unrecognised.title": "unrecognised error",
        "unrecognised.cause": "An error no catalogue pattern knows: {message}",
        # correlator: the explanation
        "explain.no_cause": "No line in the logs names a cause; the first sign is: {text}",
        "explain.cause_in_qemu_log": "Its cause is usually in QEMU's own log, /var/log/libvirt/qemu/{vm}.log (QEMU's "
                                     "error as it exited), which is not among these lines; read it, or the audit log "
                                     "for a denial at that time.",
        "explain.cause_at_debug_level": "libvirtd at its default log level (3: warnings and errors) keeps only the "
                                        "summary; log_filters=\"1:qemu 1:libvirt 3:object 3:json 3:event 3:util\" in "
                                        "libvirtd.conf (or virtqemud.conf) records the monitor conversation and the "
                                        "exit, and the audit log shows SELinux/AppArmor denials.",
        "explain.then": "Then: {titles}.",
        "explain.sep": "; ",
        "explain.vms_hit": "VMs hit: {vms}.",
        "explain.result": "Result: {vm} {what}.",
        "explain.result_unnamed": "Result: the VM {what}.",
        "explain.loop": "It happened {n} times (a restart or start loop).",
        "chain": "Known chain: {steps}.",
        "chain.sep": ", ",
        "chain.oom.kill": "the kernel's OOM killer killed the QEMU process to free host memory",
        "chain.oom.crashed": "QEMU died (reason=crashed)",
        "chain.oom.eof": "libvirtd lost its monitor (End of file from monitor)",
        "chain.disk_full": "the file system holding the disk image filled up, QEMU's writes failed with ENOSPC "
                           "(block I/O error) and the guest was paused (error_policy=stop)",
        "chain.kvm": "KVM is not usable on this host (module not loaded, disabled in the BIOS or /dev/kvm not "
                     "accessible), so every VM of type 'kvm' fails to start",
        "chain.network": "the VM's NIC is on a libvirt network that is not active, so the start is refused",
        "chain.permission": "the QEMU process (user qemu/libvirt-qemu, or its SELinux/AppArmor label) cannot open "
                            "a file it needs, so QEMU exits and the start fails",
        "diag.start_vm": "virsh start {vm} # its error names the cause",
        "fix.fill_in": "To confirm, fill in the {names} and run: {command}",
        "fix.log_level": "To see the cause next time, raise libvirtd's log level: log_filters=\"1:qemu 1:libvirt "
                         "3:object 3:json 3:event 3:util\" in /etc/libvirt/libvirtd.conf.",
        # lifecycle: the reboot incident
        "reboot.title_one": "host {host} rebooted at {when}; {names} was running before and was not started again",
        "reboot.title_many": "host {host} rebooted at {when}; {names} were running before and were not started "
                             "again",
        "reboot.how_crash": "went down without a shutdown line (a crash or a power loss)",
        "reboot.how_shutdown": "was shut down at {at}",
        "reboot.kernel": "kernel {kernel}",
        "reboot.host_line": "Host {host} {how} and booted at {when} ({booted}).",
        "reboot.counts": "{total} VM(s) were running before; {back} were started again within {minutes} min; "
                         "not running after it: {missing}.",
        "reboot.failed": "{vm} was started but failed to start.",
        "reboot.failed_ref": "{vm} was started but failed to start (incident {other}).",
        "reboot.all_back": "All of them were running again by {at}.",
        "reboot.related": " {vm} was being started again after host {host} rebooted (incident {id}).",
        "reboot.fix_start": "Start them: for vm in {vms}; do virsh start $vm; done",
        "reboot.fix_autostart": "Make them start with the host: for vm in {vms}; do virsh autostart $vm; done "
                                "(each gets the link /etc/libvirt/qemu/autostart/VM.xml)",
        "reboot.fix_why": "If autostart was set, find why it did not act: a failed start in the logs (Failed to "
                          "autostart VM), or a storage pool or network it needs that was not up (virsh "
                          "pool-autostart, virsh net-autostart).",
        "reboot.fix_guests": "Or let libvirt-guests restart what was running at shutdown: ON_BOOT=start in "
                             "/etc/default/libvirt-guests.",
        # fleet (logsense/fleet.py): one cause on several hosts
        "fleet.cause.storage": "a storage backend the hosts share (NFS, Ceph, iSCSI or a SAN) failed or became "
                               "unreachable",
        "fleet.cause.disk_image": "images on shared storage became unavailable or were changed on every host",
        "fleet.cause.network": "a network outage (switch, uplink, VLAN or a service such as DHCP/DNS) hit every "
                               "host at once",
        "fleet.cause.memory": "a change rolled out to these hosts (a package or kernel update, a VM placement) or "
                              "a shared workload exhausted their memory at once",
        "fleet.cause.rollout": "a change rolled out to these hosts at once (a package or kernel update, a "
                               "configuration push)",
        "fleet.title": "{n} hosts: {cause}{what}",
        "fleet.affects": " (affects {n} VMs)",
        "fleet.no_vm": "no VM named",
        "fleet.explanation": "The same cause, {cause}{what}, appeared on {n} hosts within {span}: most likely "
                             "{shared}. Hosts and VMs hit: {hit}. Each host's own incident explains what it saw "
                             "there.",
        "fleet.check_first": "Check what the hosts share first, from one host, before touching each host: {shared}.",
        "fleet.span_s": "{n} s",
        "fleet.span_min": "{n} min",
        "fleet.summary": "Fleet: {hosts} hosts, {n} fleet incident(s)",
        "fleet.hosts": "hosts: {hosts}",
        "fleet.host_state": "{n} incident(s), worst {worst}",
        "fleet.host_error": "error: {error}",
        "fleet.columns": "host|state|path",
        "names.more": "{names} and {n} more",
        "dur.s": "{s}s",
        "dur.dh": "{d}d {h}h",
        "dur.hm": "{h}h {m}m",
        "dur.ms": "{m}m {s}s",
        "dur.record_h": "{h} h {m} min {s} s",
        "dur.record_m": "{m} min {s} s",
        "downtime": " Downtime: {said}{more}.",
        "downtime.back": "{vm} down from {down} to {back} ({duration})",
        "downtime.still": "{vm} down from {down} to the end of the logs (at least {duration})",
        "downtime.more": "; and {n} more",
        # reports: words shown beside the data
        "severity.critical": "critical",
        "severity.major": "major",
        "severity.minor": "minor",
        "scope.vm": "vm",
        "scope.host": "host",
        "scope.fleet": "fleet",
        "label.when": "When",
        "label.scope": "Scope",
        "label.host": "host",
        "label.vms": "VMs",
        "label.category": "Category",
        "label.root_cause": "root cause",
        "label.why": "Why",
        "label.recovered": "Recovered",
        "label.evidence": "Evidence",
        "label.more": "… {n} more",
        "label.fix": "Fix",
        "label.confirm": "Confirm",
        "label.severity": "Severity",
        "label.unrecognised": "unrecognised",
        "report.unrecognised": "Unrecognised errors",
        "report.unrecognised_hint": "(no pattern knows them yet)",
        "md.unrecognised_table": "| count | message shape |",
        "html.title": "logsense report",
        "html.timeline": "Timeline",
        "html.columns": "time|VM|pattern|message|where|×",
        "html.unrecognised_columns": "count|shape",
        "html.lifecycle": "VM lifecycle",
        # logsense vms
        "vms.heads": "VM|HOST|STATE|LAST START|LAST STOP|CRASHES|FAILED STARTS|DOWN",
        "vms.none": "No VM starts or stops in these logs.",
        "vms.mark": "host {host} {kind} at {at}: {message}",
        "vms.footer": "{n} VMs; window {first} → {last}",
        "vms.md_heading": "VMs: {n}",
        "vms.md_marks": "Host boots and shutdowns",
        "vms.md_mark": "{host} **{kind}** at {at}: {message}",
        "vms.html_title": "VMs",
        "state.running": "running",
        "state.shut off": "shut off",
        "mark.boot": "boot",
        "mark.shutdown": "shutdown",
        "reason.manual": "manual",
        "reason.autostart": "autostart",
        "reason.migrated-in": "migrated-in",
        "reason.unknown": "unknown",
        "reason.shutdown": "shutdown",
        "reason.destroyed": "destroyed",
        "reason.crashed": "crashed",
        "reason.failed": "failed",
        "reason.migrated-out": "migrated-out",
        "reason.saved": "saved",
        "reason.host-down": "host-down",
        "reason.running": "running",
        # logsense events (text)
        "events.unrecognised": "unrecognised",
        # report summary and groups (".one"/".many": tn() picks by the count)
        "summary.none": "No incidents",
        "summary.incidents.one": "{n} incident",
        "summary.incidents.many": "{n} incidents",
        "summary.grouped.one": " in {n} group",
        "summary.grouped.many": " in {n} groups",
        "summary.headline": "{incidents}{grouped}: {counts}",
        "summary.count": "{n} {severity}",
        "list.sep": ", ",
        "group.title": "{title} — {incidents}",
        "group.vms": "{n} VMs",
        "group.hosts": "{n} hosts",
        "stat.files_read.one": "{n} file",
        "stat.files_read.many": "{n} files",
        "stat.lines_read.one": "{n} line",
        "stat.lines_read.many": "{n} lines",
        "stat.events_matched.one": "{n} event matched",
        "stat.events_matched.many": "{n} events matched",
        "stat.unrecognised_errors.one": "{n} error line no pattern knows",
        "stat.unrecognised_errors.many": "{n} error lines no pattern knows",
        "stat.files_skipped.one": "{n} file skipped",
        "stat.files_skipped.many": "{n} files skipped",
        "stat.unparsed_lines.one": "{n} line not understood",
        "stat.unparsed_lines.many": "{n} lines not understood",
        "stat.long_lines.one": "{n} over-long line cut",
        "stat.long_lines.many": "{n} over-long lines cut",
        "text.title": "logsense report: {headline}",
        "label.hosts": "Hosts",
        "label.vms_hit": "VMs hit",
        "label.time_span": "Time span",
        "label.read": "Read",
        "label.not_read": "Not read",
        "label.also": "Also",
        "label.logs_in": "Logs in",
        "label.warnings": "Warnings",
        "warnings.one": "{n} warning:",
        "warnings.many": "{n} warnings:",
        "scope.line": "{scope} on host {host}",
        "scope.vms": "; VMs: {vms}",
        "category.line": "{category}; root cause {root}",
        "context.one": "Context ({n} line around it, not evidence)",
        "context.many": "Context ({n} lines around it, not evidence)",
        "same_on.one": "Same on ({n} more incident)",
        "same_on.many": "Same on ({n} more incidents)",
        "md.title": "logsense report: {incidents}",
        "md.groups_table": "| severity | first seen | scope | VMs | incidents | title |",
        "label.time_span_lc": "time span",
        "label.hosts_lc": "hosts",
        "label.vms_hit_n": "VMs hit ({n})",
        "label.warnings_n": "Warnings ({n})",
        "md.context": "**Context** ({lines} around it, not evidence)",
        "html.context": "Context: {lines} around it, not evidence",
        "label.context_lines.one": "{n} line",
        "label.context_lines.many": "{n} lines",
        "more_incidents.one": "{n} more incident",
        "more_incidents.many": "{n} more incidents",
        "md.same_on_head": "**Same on** ({more})",
        "html.same_on_head": "Same on ({more})",
        "md.same_on": "{who} on {host}, {span}",
        "html.and_more": "{title} (and {more})",
        "html.summary_columns": "severity|first seen|scope|VMs|incidents|title",
        "html.legend": "unrecognised error|an incident (click a mark to open it)",
        # the email sink
        "status.open": "open",
        "status.updated": "updated",
        "status.resolved": "resolved",
        "email.status": "status: {status} (version {version})",
        "email.severity": "severity: {severity}   category: {category}",
        "email.host": "host: {host}   VMs: {vms}",
        "email.seen": "first seen: {first}   last seen: {last}",
        "email.remediation": "Remediation:",
        "email.diagnostics": "Diagnostics:",
        "email.evidence": "Evidence:",
    },
    "zh": {
        "outcome.failed_start": "启动失败",
        "outcome.crashed": "崩溃",
        "outcome.paused": "被暂停或失去了磁盘",
        "outcome.panicked": "虚拟机内核 panic",
        "outcome.errors": "出现错误",
        "title.host_default": "宿主机",
        "title.unknown_vm": "未知虚拟机",
        "title.host": "{host}：{cause}",
        "title.vm": "{vm} {what}：{cause}",
        "title.vm_unexplained": "{vm} {what}：日志中未见原因（{cause}）",
        "title.no_vm_line": "（日志中没有指明虚拟机）",
        "title.affects": "（影响 {vms}）",
        "title.times": " —— 共 {n} 次",
        "unrecognised.title": "未识别的错误",
        "unrecognised.cause": "目录中没有任何模式能识别的错误：{message}",
        "explain.no_cause": "日志中没有任何一行指明原因；最早的迹象是：{text}",
        "explain.cause_in_qemu_log": "原因通常记录在 QEMU 自己的日志 /var/log/libvirt/qemu/{vm}.log 中"
                                     "（QEMU 退出时的报错），而它不在这些日志行里；"
                                     "请查看该日志，或查看同一时间审计日志中的拒绝记录。",
        "explain.cause_at_debug_level": "libvirtd 在默认日志级别（3：警告和错误）下只记录摘要；"
                                        "在 libvirtd.conf（或 virtqemud.conf）中设置 log_filters=\"1:qemu 1:libvirt "
                                        "3:object 3:json 3:event 3:util\" 可记录监视器的交互和退出过程，"
                                        "审计日志则会显示 SELinux/AppArmor 拒绝。",
        "explain.then": "随后：{titles}。",
        "explain.sep": "；",
        "explain.vms_hit": "受影响的虚拟机：{vms}。",
        "explain.result": "结果：{vm} {what}。",
        "explain.result_unnamed": "结果：该虚拟机{what}。",
        "explain.loop": "共发生 {n} 次（反复重启或反复启动）。",
        "chain": "已知故障链：{steps}。",
        "chain.sep": "，",
        "chain.oom.kill": "内核 OOM killer 为释放宿主机内存杀掉了 QEMU 进程",
        "chain.oom.crashed": "QEMU 随之退出（reason=crashed）",
        "chain.oom.eof": "libvirtd 与其监视器的连接中断（End of file from monitor）",
        "chain.disk_full": "存放磁盘镜像的文件系统被写满，QEMU 的写操作因 ENOSPC 失败（块设备 I/O 错误），"
                           "虚拟机被暂停（error_policy=stop）",
        "chain.kvm": "这台宿主机上 KVM 不可用（模块未加载、BIOS 中关闭了虚拟化，或 /dev/kvm 无法访问），"
                     "所有 'kvm' 类型的虚拟机都无法启动",
        "chain.network": "虚拟机网卡所在的 libvirt 网络未激活，启动请求被拒绝",
        "chain.permission": "QEMU 进程（qemu/libvirt-qemu 用户，或其 SELinux/AppArmor 标签）无法打开所需的文件，"
                            "QEMU 退出，启动失败",
        "diag.start_vm": "virsh start {vm} # 它的报错会指明原因",
        "fix.fill_in": "如需确认，填入 {names} 后运行：{command}",
        "fix.log_level": "为了下次能看到原因，提高 libvirtd 的日志级别：在 /etc/libvirt/libvirtd.conf 中设置 "
                         "log_filters=\"1:qemu 1:libvirt 3:object 3:json 3:event 3:util\"。",
        "reboot.title_one": "宿主机 {host} 于 {when} 重启；{names} 重启前在运行，之后未被重新启动",
        "reboot.title_many": "宿主机 {host} 于 {when} 重启；{names} 重启前在运行，之后未被重新启动",
        "reboot.how_crash": "在没有任何关机记录的情况下宕机（崩溃或断电）",
        "reboot.how_shutdown": "于 {at} 关机",
        "reboot.kernel": "内核 {kernel}",
        "reboot.host_line": "宿主机 {host} {how}，并于 {when} 重新启动（{booted}）。",
        "reboot.counts": "重启前有 {total} 台虚拟机在运行；{minutes} 分钟内重新启动了 {back} 台；"
                         "之后仍未运行：{missing}。",
        "reboot.failed": "{vm} 曾被启动，但启动失败。",
        "reboot.failed_ref": "{vm} 曾被启动，但启动失败（故障 {other}）。",
        "reboot.all_back": "到 {at} 时它们已全部重新运行。",
        "reboot.related": "宿主机 {host} 重启后，{vm} 正在被重新启动（故障 {id}）。",
        "reboot.fix_start": "启动这些虚拟机：for vm in {vms}; do virsh start $vm; done",
        "reboot.fix_autostart": "让它们随宿主机自动启动：for vm in {vms}; do virsh autostart $vm; done"
                                "（每台都会生成链接 /etc/libvirt/qemu/autostart/VM.xml）",
        "reboot.fix_why": "如果已设置自动启动，查明它为何没有生效：日志中的启动失败（Failed to autostart VM），"
                          "或它依赖的存储池或网络当时没有就绪（virsh pool-autostart、virsh net-autostart）。",
        "reboot.fix_guests": "或者让 libvirt-guests 恢复关机时正在运行的虚拟机：在 /etc/default/libvirt-guests "
                             "中设置 ON_BOOT=start。",
        # fleet (logsense/fleet.py): one cause on several hosts
        "fleet.cause.storage": "这些宿主机共用的存储后端（NFS、Ceph、iSCSI 或 SAN）故障或无法访问",
        "fleet.cause.disk_image": "共享存储上的镜像不可用，或在每台宿主机上都被改动",
        "fleet.cause.network": "一次网络中断（交换机、上联、VLAN 或 DHCP/DNS 等服务）同时影响了每台宿主机",
        "fleet.cause.memory": "推送到这些宿主机的一次变更（软件包或内核更新、虚拟机调度）"
                              "或共同的负载同时耗尽了它们的内存",
        "fleet.cause.rollout": "同时推送到这些宿主机的一次变更（软件包或内核更新、配置下发）",
        "fleet.title": "{n} 台宿主机：{cause}{what}",
        "fleet.affects": "（影响 {n} 台虚拟机）",
        "fleet.no_vm": "未指明虚拟机",
        "fleet.explanation": "同一原因 {cause}{what} 在 {span} 内出现在 {n} 台宿主机上：最可能是{shared}。"
                             "受影响的宿主机和虚拟机：{hit}。每台宿主机自己的故障说明了它那里看到的情况。",
        "fleet.check_first": "先在一台宿主机上检查它们共用的部分，再逐台处理：{shared}。",
        "fleet.span_s": "{n} 秒",
        "fleet.span_min": "{n} 分钟",
        "fleet.summary": "集群：{hosts} 台宿主机，{n} 个集群故障",
        "fleet.hosts": "宿主机：{hosts}",
        "fleet.host_state": "{n} 个故障，最严重 {worst}",
        "fleet.host_error": "错误：{error}",
        "fleet.columns": "宿主机|状态|路径",
        "names.more": "{names} 等另外 {n} 台",
        "dur.s": "{s} 秒",
        "dur.dh": "{d} 天 {h} 小时",
        "dur.hm": "{h} 小时 {m} 分",
        "dur.ms": "{m} 分 {s} 秒",
        "dur.record_h": "{h} 小时 {m} 分 {s} 秒",
        "dur.record_m": "{m} 分 {s} 秒",
        "downtime": "停机情况：{said}{more}。",
        "downtime.back": "{vm} 于 {down} 停机，{back} 恢复（停机 {duration}）",
        "downtime.still": "{vm} 自 {down} 起停机，直到日志结束仍未恢复（至少 {duration}）",
        "downtime.more": "；另有 {n} 台",
        "severity.critical": "严重",
        "severity.major": "重要",
        "severity.minor": "次要",
        "scope.vm": "单台虚拟机",
        "scope.host": "整台宿主机",
        "scope.fleet": "多台宿主机",
        "label.when": "时间",
        "label.scope": "范围",
        "label.host": "宿主机",
        "label.vms": "虚拟机",
        "label.category": "类别",
        "label.root_cause": "根本原因",
        "label.why": "原因",
        "label.recovered": "已恢复",
        "label.evidence": "证据",
        "label.more": "…… 另有 {n} 条",
        "label.fix": "处理",
        "label.confirm": "确认",
        "label.severity": "严重程度",
        "label.unrecognised": "未识别",
        "report.unrecognised": "未识别的错误",
        "report.unrecognised_hint": "（目录中还没有模式能识别它们）",
        "md.unrecognised_table": "| 次数 | 消息形态 |",
        "html.title": "logsense 报告",
        "html.timeline": "时间线",
        "html.columns": "时间|虚拟机|模式|消息|位置|次数",
        "html.unrecognised_columns": "次数|形态",
        "html.lifecycle": "虚拟机生命周期",
        "vms.heads": "虚拟机|宿主机|状态|最近启动|最近停止|崩溃|启动失败|停机时长",
        "vms.none": "这些日志中没有虚拟机的启动或停止记录。",
        "vms.mark": "宿主机 {host} 于 {at} {kind}：{message}",
        "vms.footer": "{n} 台虚拟机；时间范围 {first} → {last}",
        "vms.md_heading": "虚拟机：{n} 台",
        "vms.md_marks": "宿主机启动与关机",
        "vms.md_mark": "{host} 于 {at} **{kind}**：{message}",
        "vms.html_title": "虚拟机",
        "state.running": "运行中",
        "state.shut off": "已关机",
        "mark.boot": "启动",
        "mark.shutdown": "关机",
        "reason.manual": "手动",
        "reason.autostart": "自动启动",
        "reason.migrated-in": "迁入",
        "reason.unknown": "未知",
        "reason.shutdown": "正常关机",
        "reason.destroyed": "强制关闭",
        "reason.crashed": "崩溃",
        "reason.failed": "启动失败",
        "reason.migrated-out": "迁出",
        "reason.saved": "已保存",
        "reason.host-down": "宿主机宕机",
        "reason.running": "运行中",
        "events.unrecognised": "未识别",
        "summary.none": "未发现故障",
        "summary.incidents.one": "{n} 个故障",
        "summary.incidents.many": "{n} 个故障",
        "summary.grouped.one": "（{n} 组）",
        "summary.grouped.many": "（{n} 组）",
        "summary.headline": "{incidents}{grouped}：{counts}",
        "summary.count": "{severity} {n} 个",
        "list.sep": "，",
        "group.title": "{title} —— {incidents}",
        "group.vms": "{n} 台虚拟机",
        "group.hosts": "{n} 台宿主机",
        "stat.files_read.one": "{n} 个文件",
        "stat.files_read.many": "{n} 个文件",
        "stat.lines_read.one": "{n} 行",
        "stat.lines_read.many": "{n} 行",
        "stat.events_matched.one": "匹配 {n} 个事件",
        "stat.events_matched.many": "匹配 {n} 个事件",
        "stat.unrecognised_errors.one": "{n} 行错误没有模式能识别",
        "stat.unrecognised_errors.many": "{n} 行错误没有模式能识别",
        "stat.files_skipped.one": "跳过 {n} 个文件",
        "stat.files_skipped.many": "跳过 {n} 个文件",
        "stat.unparsed_lines.one": "{n} 行无法解析",
        "stat.unparsed_lines.many": "{n} 行无法解析",
        "stat.long_lines.one": "{n} 行过长被截断",
        "stat.long_lines.many": "{n} 行过长被截断",
        "text.title": "logsense 报告：{headline}",
        "label.hosts": "宿主机",
        "label.vms_hit": "涉及虚拟机",
        "label.time_span": "时间范围",
        "label.read": "已读取",
        "label.not_read": "未读取",
        "label.also": "其他",
        "label.logs_in": "日志目录",
        "label.warnings": "警告",
        "warnings.one": "{n} 条警告：",
        "warnings.many": "{n} 条警告：",
        "scope.line": "{scope}，宿主机 {host}",
        "scope.vms": "；虚拟机：{vms}",
        "category.line": "{category}；根本原因 {root}",
        "context.one": "上下文（前后 {n} 行，不是证据）",
        "context.many": "上下文（前后 {n} 行，不是证据）",
        "same_on.one": "同样发生于（另有 {n} 个故障）",
        "same_on.many": "同样发生于（另有 {n} 个故障）",
        "md.title": "logsense 报告：{incidents}",
        "md.groups_table": "| 严重程度 | 最早出现 | 范围 | 虚拟机 | 故障数 | 标题 |",
        "label.time_span_lc": "时间范围",
        "label.hosts_lc": "宿主机",
        "label.vms_hit_n": "涉及虚拟机（{n} 台）",
        "label.warnings_n": "警告（{n} 条）",
        "md.context": "**上下文**（前后 {lines}，不是证据）",
        "html.context": "上下文：前后 {lines}，不是证据",
        "label.context_lines.one": "{n} 行",
        "label.context_lines.many": "{n} 行",
        "more_incidents.one": "另有 {n} 个故障",
        "more_incidents.many": "另有 {n} 个故障",
        "md.same_on_head": "**同样发生于**（{more}）",
        "html.same_on_head": "同样发生于（{more}）",
        "md.same_on": "{who}，宿主机 {host}，{span}",
        "html.and_more": "{title}（{more}）",
        "html.summary_columns": "严重程度|最早出现|范围|虚拟机|故障数|标题",
        "html.legend": "未识别的错误|故障时段（点击标记打开）",
        "status.open": "新发生",
        "status.updated": "有更新",
        "status.resolved": "已解决",
        "email.status": "状态：{status}（第 {version} 版）",
        "email.severity": "严重程度：{severity}   类别：{category}",
        "email.host": "宿主机：{host}   虚拟机：{vms}",
        "email.seen": "最早出现：{first}   最后出现：{last}",
        "email.remediation": "处理措施：",
        "email.diagnostics": "诊断命令：",
        "email.evidence": "证据：",
    },
}


class _Keep(dict):
    """format_map fields: a `{name}` not given stays in the text."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def t(key: str, lang: str = DEFAULT_LANG, **fields: Any) -> str:
    """The text of `key` in `lang` (English if that language lacks it), fields filled."""
    text = MESSAGES.get(lang, {}).get(key) or MESSAGES[DEFAULT_LANG][key]
    return text.format_map(_Keep(fields)) if fields or "{" in text else text


def tn(key: str, n: int, lang: str = DEFAULT_LANG, **fields: Any) -> str:
    """`key.one` or `key.many` by the count `n` (English plural; languages without one repeat it)."""
    return t(f"{key}.{'one' if n == 1 else 'many'}", lang, n=n, **fields)


def word(prefix: str, value: str | None, lang: str = DEFAULT_LANG) -> str:
    """A data word (severity, scope, reason, state) shown in `lang`; unknown words as they are."""
    if value is None:
        return "-"
    key = f"{prefix}.{value}"
    return t(key, lang) if key in MESSAGES[DEFAULT_LANG] else value


def check_lang(lang: str | None) -> str:
    """A --lang value or the config's `lang`; raises ValueError naming the choices."""
    if lang is None:
        return env_lang()
    if lang not in LANGS:
        raise ValueError(f"lang is one of {', '.join(LANGS)}, not {lang!r}")
    return lang


def env_lang(environ: dict[str, str] | None = None) -> str:
    """The language the locale asks for, as gettext reads it (LANGUAGE, LC_ALL, LC_MESSAGES,
    LANG: the first one set): zh_CN.UTF-8, zh_TW, zh give zh; anything else English."""
    env = os.environ if environ is None else environ
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name)
        if value:
            first = value.split(":")[0].split(".")[0].split("@")[0].lower()
            base = first.split("_")[0].split("-")[0]
            return base if base in LANGS else DEFAULT_LANG
    return DEFAULT_LANG
