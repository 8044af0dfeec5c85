"""Reading Kubernetes objects the way the Pulumi engine hands them to a policy.

Properties arrive camelCase (``metadata.annotations``, ``spec.template.spec``), numbers as
floats (they travel as a protobuf Struct), and mappings and lists wrapped in pulumi-policy's
unknown-checking proxies, which are ``collections.abc`` Mapping/Sequence but not dict/list.
Reading a value that is unknown during preview raises ``UnknownValueError``; nothing here
catches it, so the validators can report it as "cannot evaluate" instead of passing.

The helpers only read; they hold no policy (limits, defaults) of their own.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Callable

CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
RESOURCE_QUOTA = "kubernetes:core/v1:ResourceQuota"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
CLUSTER_ROLE = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"
JOB = "kubernetes:batch/v1:Job"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
STATEFUL_SET = "kubernetes:apps/v1:StatefulSet"
DAEMON_SET = "kubernetes:apps/v1:DaemonSet"

#: Where each pod-creating kind keeps its pod template (``metadata`` + ``spec``).
_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:core/v1:Pod": (),
    DEPLOYMENT: ("spec", "template"),
    STATEFUL_SET: ("spec", "template"),
    DAEMON_SET: ("spec", "template"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template"),
    JOB: ("spec", "template"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template"),
}
WORKLOAD_TYPES = tuple(_TEMPLATE_PATHS)

HOSTNAME = "kubernetes.io/hostname"


def mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one (absent and malformed read alike)."""
    return value if isinstance(value, Mapping) else {}


def items(value: Any) -> list[Any]:
    """``value``'s elements if it is a list (not a string), else none."""
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else []


def dig(value: Any, *path: str) -> Any:
    """``value[path[0]][path[1]]...``, or None where a step is missing or not a mapping."""
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def kind(resource_type: str) -> str:
    return resource_type.rsplit(":", 1)[-1]


def name(props: Mapping[str, Any], fallback: str = "?") -> str:
    return dig(props, "metadata", "name") or fallback


def namespace(props: Mapping[str, Any]) -> str:
    # An object without metadata.namespace lands in the provider's namespace, "default"
    # unless the kubeconfig says otherwise; the components always set it.
    return dig(props, "metadata", "namespace") or "default"


def ref(resource_type: str, props: Mapping[str, Any], fallback: str = "?") -> str:
    """``Job larry-01/cleanup-worker`` (``ClusterRole reader`` when cluster-scoped)."""
    space = dig(props, "metadata", "namespace")
    return f"{kind(resource_type)} {space + '/' if space else ''}{name(props, fallback)}"


def labels(props: Mapping[str, Any]) -> Mapping[str, Any]:
    return mapping(dig(props, "metadata", "labels"))


def annotations(props: Mapping[str, Any]) -> Mapping[str, Any]:
    return mapping(dig(props, "metadata", "annotations"))


def pod_template(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod template (metadata + spec) of a pod-creating kind, None for other kinds."""
    if resource_type not in _TEMPLATE_PATHS:
        return None
    return mapping(dig(props, *_TEMPLATE_PATHS[resource_type]))


def pod_spec(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    template = pod_template(resource_type, props)
    return None if template is None else mapping(template.get("spec"))


def containers(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Init containers then containers: both run on the node and both need a budget."""
    return [mapping(c) for key in ("initContainers", "containers") for c in items(spec.get(key))]


def pods_per_object(resource_type: str, props: Mapping[str, Any]) -> int:
    """Pods one object runs at once: replicas, or a Job's parallelism (both default 1).

    A DaemonSet runs one pod on each eligible node; the caller places those itself.
    """
    path = _COUNT_PATHS.get(resource_type, ("spec", "replicas"))
    value = dig(props, *path) if path else None
    return 1 if value is None else int(value)


_COUNT_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:core/v1:Pod": (),
    JOB: ("spec", "parallelism"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "parallelism"),
}


def pinned_hostnames(spec: Mapping[str, Any]) -> frozenset[str] | None:
    """The nodes a pod may be scheduled on by hostname, or None if it is not pinned.

    Required node affinity terms are ORed, so the pod is pinned only if every term names
    hostnames (``kubernetes.io/hostname In [...]``); a nodeSelector on the hostname ANDs.
    """
    allowed: frozenset[str] | None = None
    terms = items(dig(spec, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution",
                      "nodeSelectorTerms"))
    if terms:
        union: set[str] = set()
        for term in terms:
            hosts = _term_hostnames(mapping(term))
            if hosts is None:
                union = set()
                break
            union |= hosts
        else:
            allowed = frozenset(union)
    selected = mapping(spec.get("nodeSelector")).get(HOSTNAME)
    if selected is not None:
        allowed = frozenset({selected}) if allowed is None else allowed & {selected}
    return allowed


def _term_hostnames(term: Mapping[str, Any]) -> set[str] | None:
    hosts: set[str] | None = None
    for expression in items(term.get("matchExpressions")):
        expression = mapping(expression)
        if expression.get("key") == HOSTNAME and expression.get("operator") == "In":
            values = {str(v) for v in items(expression.get("values"))}
            hosts = values if hosts is None else hosts & values  # expressions in a term AND
    return hosts


def one_per_node(spec: Mapping[str, Any], pod_labels: Mapping[str, Any]) -> bool:
    """True if required pod anti-affinity keeps two of these pods off the same node."""
    terms = items(dig(spec, "affinity", "podAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution"))
    return any(mapping(t).get("topologyKey") == HOSTNAME
               and selector_matches(mapping(t).get("labelSelector"), pod_labels) for t in terms)


_OPERATORS: dict[str, Callable[[Any, list[str]], bool]] = {
    "In": lambda value, values: value is not None and str(value) in values,
    "NotIn": lambda value, values: value is None or str(value) not in values,
    "Exists": lambda value, _values: value is not None,
    "DoesNotExist": lambda value, _values: value is None,
}


def selector_matches(selector: Any, object_labels: Mapping[str, Any]) -> bool:
    """Kubernetes label-selector semantics; an empty selector selects everything.

    A missing selector (None) selects nothing, as in an anti-affinity term without one.
    """
    if not isinstance(selector, Mapping):
        return False
    for key, value in mapping(selector.get("matchLabels")).items():
        if object_labels.get(key) != value:
            return False
    for expression in items(selector.get("matchExpressions")):
        expression = mapping(expression)
        check = _OPERATORS.get(expression.get("operator"))
        values = [str(v) for v in items(expression.get("values"))]
        if check is None or not check(object_labels.get(expression.get("key")), values):
            return False
    return True


_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def image_repository(image: str) -> str:
    """``docker.io/library/redis:7.2-alpine`` -> ``redis``: the image's last path segment."""
    return _DIGEST.sub("", image).rsplit("/", 1)[-1].split(":", 1)[0]


def image_tag(image: str) -> str | None:
    """The tag, or None when untagged; a digest-pinned image reports ``@sha256``."""
    if _DIGEST.search(image):
        return "@sha256"
    last = image.rsplit("/", 1)[-1]  # a registry's ":port" sits before the last "/"
    return last.split(":", 1)[1] if ":" in last else None
