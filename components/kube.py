"""Small Kubernetes building blocks shared by the components: provider, labels, pods, quantities.

Manifests are written as camelCase dicts, the shape of the Kubernetes API and of the
documentation, so each one reads like the YAML it renders to.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.pod_security import container_security_context, pod_security_context
from plan.model import StackConfig

PART_OF = "larry"
MANAGED_BY = "pulumi"
#: Jobs run for up to their phase deadline: `pulumi up` must not wait for them to complete.
SKIP_AWAIT = {"pulumi.com/skipAwait": "true"}
#: Where the pods' writable scratch space lives, since every root filesystem is read-only.
TMP_MOUNT = {"name": "tmp", "mountPath": "/tmp"}
TMP_VOLUME = {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}
#: CoreDNS's location is a cluster convention rather than plan data (k3s's default); where
#: Prometheus runs is the stack's larry:observability.prometheusNamespace.
DNS = {"namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}}
#: Labels every pod of the Redis hub carries (servers and sentinels): what Larry pods may reach.
REDIS_POD_SELECTOR = {"app.kubernetes.io/name": "redis", "app.kubernetes.io/part-of": PART_OF}


def provider(cfg: StackConfig) -> k8s.Provider:
    """One provider for the stack: render mode writes manifests instead of touching a cluster."""
    if cfg.cluster.render_mode:
        return k8s.Provider("k8s", render_yaml_to_directory=f"{cfg.cluster.render_directory}/{cfg.stack}")
    return k8s.Provider("k8s", kubeconfig=cfg.cluster.kubeconfig, context=cfg.cluster.context)


def labels(name: str, instance: str, component: str, **extra: str) -> dict[str, str]:
    """The recommended app.kubernetes.io labels plus the project's own selectors."""
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        **extra,
    }


def metadata(name: str, namespace: str | None, labels: Mapping[str, str],
             annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(labels)}
    if namespace is not None:
        meta["namespace"] = namespace
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def node_affinity(nodes: Iterable[str]) -> dict[str, Any]:
    """Required placement on the named nodes (seed 001 "Node Affinity Rules")."""
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": list(nodes)}]}]}}}


def spread_across_nodes(selector: Mapping[str, str]) -> dict[str, Any]:
    """Required anti-affinity: no two pods matching ``selector`` on one node."""
    return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": dict(selector)}, "topologyKey": "kubernetes.io/hostname"}]}}


def env(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Plain environment variables; numbers become strings as the API requires."""
    return [{"name": key, "value": str(value)} for key, value in values.items()]


def secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def container(name: str, image: str, resources: Mapping[str, Any], *, command: Sequence[str] | None = None,
              env: Sequence[Mapping[str, Any]] = (), ports: Sequence[Mapping[str, Any]] = (),
              mounts: Sequence[Mapping[str, Any]] = (), **extra: Any) -> dict[str, Any]:
    """A restricted container with requests and limits and a writable /tmp."""
    spec: dict[str, Any] = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "resources": dict(resources),
        "securityContext": container_security_context(),
        "volumeMounts": [*mounts, TMP_MOUNT],
        **extra,
    }
    if command:
        spec["command"] = list(command)
    if env:
        spec["env"] = list(env)
    if ports:
        spec["ports"] = list(ports)
    return spec


def pod_spec(containers: Sequence[Mapping[str, Any]], *, uid: int, gid: int,
             volumes: Sequence[Mapping[str, Any]] = (), service_account: str | None = None,
             pull_secrets: Sequence[str] = (), **extra: Any) -> dict[str, Any]:
    """A restricted pod; the API token is mounted only for pods that name a service account;
    images are pulled with ``pull_secrets`` (Secrets in the pod's namespace)."""
    spec: dict[str, Any] = {
        "securityContext": pod_security_context(uid, gid),
        "automountServiceAccountToken": service_account is not None,
        "containers": list(containers),
        "volumes": [*volumes, TMP_VOLUME],
        **extra,
    }
    if service_account is not None:
        spec["serviceAccountName"] = service_account
    if pull_secrets:
        spec["imagePullSecrets"] = [{"name": name} for name in pull_secrets]
    return spec


def http_probe(path: str, port: str, period: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": period, "timeoutSeconds": 3,
            "failureThreshold": 3}


def dns_egress() -> dict[str, Any]:
    """Egress rule admitting cluster DNS lookups only."""
    return {"to": [{"namespaceSelector": namespace_selector([DNS["namespace"]]),
                    "podSelector": {"matchLabels": DNS["labels"]}}],
            "ports": [{"protocol": proto, "port": 53} for proto in ("UDP", "TCP")]}


def namespace_selector(names: Iterable[str]) -> dict[str, Any]:
    """Select namespaces by the name label the API server sets on every namespace."""
    return {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In",
                                  "values": sorted(set(names))}]}


def cpu_text(millis: int) -> str:
    return f"{millis // 1000}" if millis % 1000 == 0 else f"{millis}m"


def memory_text(num_bytes: int) -> str:
    """Bytes as whole mebibytes (or gibibytes when exact), rounded up."""
    mib = math.ceil(num_bytes / 2**20)
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


def opts(parent: pulumi.Resource, *, depends_on: Sequence[pulumi.Resource] = (),
         **extra: Any) -> pulumi.ResourceOptions:
    """Children inherit the component's provider through ``parent``."""
    return pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on), **extra)
