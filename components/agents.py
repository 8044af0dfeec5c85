"""What an agent profile (``larry:agents``) adds to a worker's (or master's) pod, and the egress it is allowed.

A worker that runs a profile gets, on top of what every runtime pod gets: the profile's image;
``larry worker ... --usage <adapter> -- <the profile's command>``; the profile's plain
``env``; its ``secretEnv`` as ``valueFrom.secretKeyRef`` (the Secret's name and key are all
the manifest holds, never a value); a HOME and config directories of its own on an emptyDir
(``plan.pods.AGENT_HOME_ENV``: the root filesystem is read-only); and the label
``larry.dev/agent`` by which the profile's NetworkPolicy selects it. That NetworkPolicy, one
per profile in each namespace where a worker runs it, admits DNS and exactly the destinations
``egress`` names (the namespace's default-deny and Redis policies still apply): a CIDR with
its ports, or the pods of a Service — selected as ``app.kubernetes.io/name: <service>`` in the
Service's namespace, the label an egress proxy's pods must carry, since a NetworkPolicy
selects pods, not Services.

Not guaranteed: that the Secrets exist (they are the operator's, created outside the stack),
that the image holds the command, or that the cluster's CNI enforces NetworkPolicies.
"""
from __future__ import annotations

from typing import Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import kube
from plan import labels as contract
from plan.model import AgentProfile, Egress
from plan.pods import AGENT_HOME, AGENT_HOME_ENV

HOME_VOLUME = {"name": "agent-home", "emptyDir": {"sizeLimit": "1Gi"}}
HOME_MOUNT = {"name": "agent-home", "mountPath": AGENT_HOME}


def command(worker_command: Sequence[str], profile: AgentProfile) -> list[str]:
    """``larry worker ...`` running the profile's command, metered by its adapter."""
    return [*worker_command, "--usage", profile.usage, "--", *profile.command]


def env(profile: AgentProfile) -> list[dict[str, Any]]:
    """The agent's home, its plain variables, then its Secret-backed ones (by reference)."""
    return (kube.env(AGENT_HOME_ENV) + kube.env(profile.env)
            + [kube.secret_env(name, ref.secret, ref.key) for name, ref in profile.secret_env.items()])


def pod_selector(profile: AgentProfile) -> dict[str, Any]:
    """Every pod running the profile: its workers' and its masters' (only they carry the label)."""
    return {"matchLabels": {contract.AGENT: profile.name}}


def egress_rule(egress: Egress, namespace: str) -> dict[str, Any]:
    if egress.cidr is not None:
        peer: dict[str, Any] = {"ipBlock": {"cidr": egress.cidr}}
    else:
        service, service_namespace = egress.service_pods(namespace)
        peer = {"namespaceSelector": kube.namespace_selector([service_namespace]),
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": service}}}
    rule: dict[str, Any] = {"to": [peer]}
    if egress.ports:  # no ports: every port of that destination
        rule["ports"] = [{"protocol": "TCP", "port": port} for port in egress.ports]
    return rule


def egress_policy(resource_name: str, namespace: str, profile: AgentProfile,
                  opts: pulumi.ResourceOptions) -> k8s.networking.v1.NetworkPolicy:
    """The profile's egress in ``namespace``: DNS plus what ``egress`` names, nothing when it is empty."""
    return k8s.networking.v1.NetworkPolicy(resource_name, metadata=kube.metadata(
        f"agent-{profile.name}-egress", namespace,
        {"app.kubernetes.io/part-of": kube.PART_OF, contract.AGENT: profile.name}), spec={
        "podSelector": pod_selector(profile), "policyTypes": ["Egress"],
        "egress": [kube.dns_egress(), *(egress_rule(e, namespace) for e in profile.egress)]}, opts=opts)
