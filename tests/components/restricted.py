"""The Pod Security Standards "restricted" profile (baseline rules included), as a checker.

Written from https://kubernetes.io/docs/concepts/security/pod-security-standards/ (v1.31),
independently of components/pod_security.py, so a drift in the components is caught rather
than mirrored. One extra rule is the project's own, marked as such: readOnlyRootFilesystem.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping

# Baseline "Sysctls": the safe set.
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
# Baseline "SELinux": allowed types.
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
# Restricted "Volume Types".
VOLUME_TYPES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                "projected", "secret"}
SECCOMP_OK = {"RuntimeDefault", "Localhost"}


def pod_specs(manifest: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The pod spec(s) a workload manifest would create."""
    kind, spec = manifest.get("kind"), manifest.get("spec", {})
    if kind == "Pod":
        yield spec
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController"):
        yield spec["template"]["spec"]
    elif kind == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]["spec"]


def violations(pod: Mapping[str, Any]) -> list[str]:
    """Every rule of the profile the pod spec breaks, one line each."""
    found: list[str] = []
    psc = pod.get("securityContext") or {}
    containers = [(kind, c) for kind in ("initContainers", "containers", "ephemeralContainers")
                  for c in pod.get(kind) or ()]

    # ---- baseline
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            found.append(f"host namespaces: {field} is true")
    if (psc.get("windowsOptions") or {}).get("hostProcess"):
        found.append("HostProcess: pod windowsOptions.hostProcess")
    for volume in pod.get("volumes") or ():
        types = set(volume) - {"name"}
        if "hostPath" in types:
            found.append(f"HostPath volumes: {volume['name']}")
        if not types <= VOLUME_TYPES:
            found.append(f"volume types: {volume['name']} uses {sorted(types - VOLUME_TYPES)}")
    for sysctl in psc.get("sysctls") or ():
        if sysctl.get("name") not in SAFE_SYSCTLS:
            found.append(f"sysctls: {sysctl.get('name')}")
    found += _selinux("pod", psc)
    found += _apparmor("pod", psc)
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    if pod_seccomp is not None and pod_seccomp not in SECCOMP_OK:
        found.append(f"seccomp: pod profile {pod_seccomp}")
    if psc.get("runAsUser") == 0:
        found.append("running as non-root user: pod runAsUser 0")

    for kind, c in containers:
        where = f"{kind}[{c.get('name')}]"
        sc = c.get("securityContext") or {}
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            found.append(f"HostProcess: {where}")
        if sc.get("privileged"):
            found.append(f"privileged containers: {where}")
        for port in c.get("ports") or ():
            if port.get("hostPort"):
                found.append(f"host ports: {where} hostPort {port['hostPort']}")
        if sc.get("procMount") not in (None, "Default"):
            found.append(f"/proc mount type: {where} {sc['procMount']}")
        found += _selinux(where, sc)
        found += _apparmor(where, sc)

        # ---- restricted
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"privilege escalation: {where} allowPrivilegeEscalation is not false")
        if sc.get("runAsNonRoot") is False or (not psc.get("runAsNonRoot") and sc.get("runAsNonRoot") is not True):
            found.append(f"running as non-root: {where} runAsNonRoot not true")
        if sc.get("runAsUser") == 0:
            found.append(f"running as non-root user: {where} runAsUser 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in SECCOMP_OK:
            found.append(f"seccomp: {where} profile {seccomp!r} (RuntimeDefault or Localhost required)")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or ()):
            found.append(f"capabilities: {where} does not drop ALL")
        if set(caps.get("add") or ()) - {"NET_BIND_SERVICE"}:
            found.append(f"capabilities: {where} adds {sorted(set(caps['add']) - {'NET_BIND_SERVICE'})}")

        # ---- the project's own rule
        if sc.get("readOnlyRootFilesystem") is not True:
            found.append(f"project rule: {where} root filesystem is writable")
    return found


def _selinux(where: str, sc: Mapping[str, Any]) -> list[str]:
    opts = sc.get("seLinuxOptions") or {}
    problems = []
    if opts.get("type", "") not in SELINUX_TYPES:
        problems.append(f"SELinux: {where} type {opts['type']}")
    if opts.get("user") or opts.get("role"):
        problems.append(f"SELinux: {where} sets user/role")
    return problems


def _apparmor(where: str, sc: Mapping[str, Any]) -> list[str]:
    profile = (sc.get("appArmorProfile") or {}).get("type")
    return [f"AppArmor: {where} profile {profile}"] if profile not in (None, "RuntimeDefault", "Localhost") else []
