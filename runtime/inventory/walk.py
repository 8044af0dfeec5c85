"""The objects of a cluster reading, as catalog assets: lineage, owners, tags and health.

Lineage lists what an asset comes from or is bound to, by natural key (so it resolves to the
same ids whoever reports them): a ReplicaSet's Deployment, a Pod's owner (ReplicaSet,
StatefulSet, DaemonSet, Job), node and container images, a Job's CronJob, an EndpointSlice's
Service and the Pods it targets, a StatefulSet's governing Service, a claim's volume, an
Ingress's backend Services, and the Helm release of whatever Helm manages (its
``meta.helm.sh/release-name`` annotation). Read the other way it gives Deployment →
ReplicaSet → Pod → image, Service → EndpointSlice → Pod, Job → Pod, StatefulSet → Pod.

Owners (``metadata.owners``) are the ownerReferences and the owning labels
(:data:`OWNER_LABELS`); tags are ``key=value`` of the :data:`TAG_LABELS`. Health comes from
each kind's status (:func:`health`); kinds without one are ``UNKNOWN``. A Helm release
record (a Secret or ConfigMap labelled ``owner=helm``) becomes one ``HELM_RELEASE`` asset per
release, from its newest record's labels (``name``, ``version``, ``status``): never from
its data, which the reading does not hold.

Guaranteed: :func:`assets_of` is a pure function of its input; every asset it returns passes
:func:`runtime.catalog.assets.parse_asset` (metadata, lineage and tags within their bounds);
an object that cannot make a valid asset (a name past 253 characters, say) is left out and
named in the problems it returns, never fatal. Not guaranteed: that a lineage entry names an
object the reading holds (an owner deleted meanwhile; readers skip what is missing).
"""
from __future__ import annotations

import json
from typing import Any, Mapping

from runtime.catalog.assets import (
    MAX_LINEAGE,
    MAX_METADATA_BYTES,
    MAX_TAG,
    MAX_TAGS,
    Asset,
    AssetError,
    parse_asset,
)

#: The seed's name for the cluster (the baseline's and the simulated payload's ``source``).
DEFAULT_SOURCE = "k3s-cluster"
#: ownerReference kinds that have an asset type.
OWNER_TYPES = {"Deployment": "DEPLOYMENT", "ReplicaSet": "REPLICASET", "StatefulSet": "STATEFULSET",
               "DaemonSet": "DAEMONSET", "Job": "JOB", "CronJob": "CRONJOB", "Node": "NODE", "Pod": "POD",
               "Service": "SERVICE"}
#: Labels that say who owns an object.
OWNER_LABELS = ("owner", "team", "app.kubernetes.io/managed-by", "app.kubernetes.io/part-of", "helm.sh/chart")
#: Labels that become tags.
TAG_LABELS = ("app", "app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component",
              "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by", "team", "owner", "tier")
HELM_RELEASE_ANNOTATION = "meta.helm.sh/release-name"
HELM_NAMESPACE_ANNOTATION = "meta.helm.sh/release-namespace"
#: A Helm release's status (its record's ``status`` label) as health.
HELM_HEALTH = {"deployed": "HEALTHY", "superseded": "HEALTHY", "failed": "UNHEALTHY", "uninstalling": "DEGRADED",
               "pending-install": "DEGRADED", "pending-upgrade": "DEGRADED", "pending-rollback": "DEGRADED"}
#: Entries of a list kept in an asset's metadata (containers, ports, hosts).
MAX_LISTED = 32


def assets_of(objects: Mapping[str, list[dict[str, Any]]], source: str = DEFAULT_SOURCE) -> tuple[list[Asset], list[str]]:
    """(the assets of ``objects``, keyed by asset type as :mod:`runtime.inventory.reader` reads
    them, each once; one line per object left out)."""
    walk = _Walk(objects, source)
    for type_, items in objects.items():
        for obj in items:
            walk.add(type_, obj)
    return walk.finish()


class _Walk:
    def __init__(self, objects: Mapping[str, list[dict[str, Any]]], source: str):
        self.source = source
        self.found: dict[str, Asset] = {}
        self.problems: list[str] = []
        self.helm: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        # A Service's health is its endpoints': ready ones in any of its slices.
        self.ready: dict[tuple[str, str], int] = {}
        for sl in objects.get("ENDPOINT_SLICE", []):
            service = _labels(sl).get("kubernetes.io/service-name")
            if service:
                key = (_meta(sl).get("namespace", ""), service)
                self.ready[key] = self.ready.get(key, 0) + sum(_ready(e) for e in sl.get("endpoints") or [])

    def key(self, type_: str, name: str, namespace: str = "") -> dict[str, str]:
        return {"type": type_, "name": name, "namespace": namespace, "source": self.source}

    def add(self, type_: str, obj: dict[str, Any]) -> None:
        labels = _labels(obj)
        if type_ in ("SECRET", "CONFIGMAP") and labels.get("owner") == "helm" and labels.get("name"):
            self._helm_record(type_, obj, labels)
            return
        meta = _meta(obj)
        namespace = meta.get("namespace", "")
        try:
            details, lineage, health = KIND_WALKS.get(type_, _plain)(self, obj)
        except (TypeError, ValueError, AttributeError, KeyError) as error:
            self.problems.append(f"left out: {type_.lower()} {namespace + '/' if namespace else ''}"
                                 f"{meta.get('name')}: a field of an unexpected type ({error})")
            return
        owners = [{"kind": ref.get("kind"), "name": ref.get("name")} for ref in meta.get("ownerReferences") or []
                  if isinstance(ref, dict)]
        for ref in owners:
            if ref["kind"] in OWNER_TYPES and isinstance(ref["name"], str):
                lineage.insert(0, self.key(OWNER_TYPES[ref["kind"]], ref["name"], namespace))
        annotations = meta.get("annotations") or {}
        if isinstance(annotations, dict) and annotations.get(HELM_RELEASE_ANNOTATION):
            lineage.append(self.key("HELM_RELEASE", annotations[HELM_RELEASE_ANNOTATION],
                                    annotations.get(HELM_NAMESPACE_ANNOTATION) or namespace))
        owners += [{"label": k, "name": labels[k]} for k in OWNER_LABELS if k in labels]
        metadata = {"uid": meta.get("uid"), "created": meta.get("creationTimestamp"), "owners": owners,
                    "labels": labels, **details}
        tags = [f"{k}={labels[k]}" for k in TAG_LABELS if k in labels and len(k) + 1 + len(labels[k]) <= MAX_TAG]
        self.put({"name": meta.get("name"), "type": type_, "source": self.source, "namespace": namespace,
                  "health": health, "metadata": metadata, "lineage": lineage, "tags": tags[:MAX_TAGS]})

    def put(self, raw: dict[str, Any]) -> None:
        raw["lineage"] = raw["lineage"][:MAX_LINEAGE]
        raw["metadata"] = _bounded(raw["metadata"])
        where = f"{raw['type'].lower()} {raw['namespace'] + '/' if raw['namespace'] else ''}{raw['name']}"
        try:
            asset = parse_asset(raw, where)
        except AssetError as error:
            self.problems.append(f"left out: {error}")
            return
        self.found[asset.id] = asset

    def image(self, ref: str, digest: str | None) -> dict[str, str]:
        """The CONTAINER_IMAGE asset of ``ref`` (registry, repository, tag, digest); its key."""
        registry, repository, tag, pinned = image_parts(ref)
        self.put({"name": ref, "type": "CONTAINER_IMAGE", "source": self.source, "namespace": "",
                  "health": "UNKNOWN", "lineage": [], "tags": [],
                  "metadata": {"registry": registry, "repository": repository, "tag": tag,
                               "digest": pinned or digest}})
        return self.key("CONTAINER_IMAGE", ref)

    def _helm_record(self, type_: str, obj: dict[str, Any], labels: dict[str, str]) -> None:
        namespace = _meta(obj).get("namespace", "")
        version = int(labels["version"]) if labels.get("version", "").isdigit() else 0
        key = (namespace, labels["name"])
        if key not in self.helm or self.helm[key][0] < version:
            self.helm[key] = (version, {"record": _meta(obj).get("name"), "storage": type_.title(),
                                        "status": labels.get("status"), "labels": labels})

    def finish(self) -> tuple[list[Asset], list[str]]:
        for (namespace, name), (version, record) in self.helm.items():
            self.put({"name": name, "type": "HELM_RELEASE", "source": self.source, "namespace": namespace,
                      "health": HELM_HEALTH.get(record["status"] or "", "UNKNOWN"),
                      "metadata": {"version": version, **record, "owners": [{"label": "owner", "name": "helm"}]},
                      "lineage": [], "tags": ["app.kubernetes.io/managed-by=Helm"]})
        return list(self.found.values()), self.problems


# ---- one function per kind: (metadata details, lineage keys, health)

Walked = tuple[dict[str, Any], list[dict[str, str]], str]


def _plain(walk: _Walk, obj: dict[str, Any]) -> Walked:
    return {}, [], "UNKNOWN"


def _namespace(walk: _Walk, obj: dict[str, Any]) -> Walked:
    phase = _status(obj).get("phase")
    return {"phase": phase}, [], {"Active": "HEALTHY", "Terminating": "DEGRADED"}.get(phase, "UNKNOWN")


def _node(walk: _Walk, obj: dict[str, Any]) -> Walked:
    status, labels = _status(obj), _labels(obj)
    info = status.get("nodeInfo") or {}
    roles = sorted(k.rpartition("/")[2] for k in labels if k.startswith("node-role.kubernetes.io/"))
    capacity = status.get("capacity") or {}
    ready = _condition(obj, "Ready")
    return ({"roles": roles, "kubeletVersion": info.get("kubeletVersion"),
             "cpu": capacity.get("cpu"), "memory": capacity.get("memory"),
             "unschedulable": bool(_spec(obj).get("unschedulable"))},
            [], {"True": "HEALTHY", "False": "UNHEALTHY"}.get(ready, "UNKNOWN"))


def _pod(walk: _Walk, obj: dict[str, Any]) -> Walked:
    spec, status = _spec(obj), _status(obj)
    statuses = {s.get("name"): s for s in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or [])
                if isinstance(s, dict)}
    containers, lineage = [], []
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        if not isinstance(c, dict) or not isinstance(c.get("image"), str) or not c["image"]:
            continue
        seen = statuses.get(c.get("name"), {})
        digest = (seen.get("imageID") or "").rpartition("@")[2] or None
        containers.append({"name": c.get("name"), "image": c["image"], "ready": seen.get("ready"),
                           "restarts": seen.get("restartCount", 0)})
        lineage.append(walk.image(c["image"], digest))
    if spec.get("nodeName"):
        lineage.append(walk.key("NODE", spec["nodeName"]))
    phase, ready = status.get("phase"), _condition(obj, "Ready")
    if phase == "Running":
        health = "HEALTHY" if ready == "True" else "DEGRADED"
    else:
        health = {"Succeeded": "HEALTHY", "Pending": "DEGRADED", "Failed": "UNHEALTHY"}.get(phase, "UNKNOWN")
    return ({"phase": phase, "node": spec.get("nodeName"), "containers": containers[:MAX_LISTED],
             "serviceAccount": spec.get("serviceAccountName")}, lineage, health)


def _replicated(ready: int, wanted: int) -> str:
    return "HEALTHY" if ready >= wanted else ("DEGRADED" if ready > 0 else "UNHEALTHY")


def _deployment(walk: _Walk, obj: dict[str, Any]) -> Walked:
    spec, status = _spec(obj), _status(obj)
    wanted, available = spec.get("replicas", 1), status.get("availableReplicas", 0)
    return ({"replicas": wanted, "ready": status.get("readyReplicas", 0), "available": available,
             "updated": status.get("updatedReplicas", 0)}, [], _replicated(available, wanted))


def _replica_set(walk: _Walk, obj: dict[str, Any]) -> Walked:
    wanted, ready = _spec(obj).get("replicas", 1), _status(obj).get("readyReplicas", 0)
    return {"replicas": wanted, "ready": ready}, [], _replicated(ready, wanted)


def _stateful_set(walk: _Walk, obj: dict[str, Any]) -> Walked:
    spec, status = _spec(obj), _status(obj)
    wanted, ready = spec.get("replicas", 1), status.get("readyReplicas", 0)
    lineage = [walk.key("SERVICE", spec["serviceName"], _meta(obj).get("namespace", ""))] \
        if spec.get("serviceName") else []
    return {"replicas": wanted, "ready": ready, "serviceName": spec.get("serviceName")}, lineage, \
        _replicated(ready, wanted)


def _daemon_set(walk: _Walk, obj: dict[str, Any]) -> Walked:
    status = _status(obj)
    wanted, ready = status.get("desiredNumberScheduled", 0), status.get("numberReady", 0)
    return {"desired": wanted, "ready": ready}, [], _replicated(ready, wanted)


def _job(walk: _Walk, obj: dict[str, Any]) -> Walked:
    status = _status(obj)
    if _condition(obj, "Complete") == "True":
        health = "HEALTHY"
    elif _condition(obj, "Failed") == "True":
        health = "UNHEALTHY"
    else:  # running: its retries so far say whether it is in trouble
        health = "DEGRADED" if status.get("failed", 0) else "HEALTHY"
    return ({"active": status.get("active", 0), "succeeded": status.get("succeeded", 0),
             "failed": status.get("failed", 0), "completions": _spec(obj).get("completions")}, [], health)


def _cron_job(walk: _Walk, obj: dict[str, Any]) -> Walked:
    spec = _spec(obj)
    return ({"schedule": spec.get("schedule"), "suspend": bool(spec.get("suspend")),
             "lastSuccessfulTime": _status(obj).get("lastSuccessfulTime")}, [],
            "DEGRADED" if spec.get("suspend") else "HEALTHY")


def _service(walk: _Walk, obj: dict[str, Any]) -> Walked:
    spec, meta = _spec(obj), _meta(obj)
    ports = [{k: p.get(k) for k in ("name", "port", "protocol")} for p in spec.get("ports") or [] if isinstance(p, dict)]
    ready = walk.ready.get((meta.get("namespace", ""), meta.get("name")))
    if spec.get("type") == "ExternalName" or ready is None and not spec.get("selector"):
        health = "UNKNOWN"  # no endpoints of Kubernetes' making to judge by
    else:
        health = "HEALTHY" if ready else "UNHEALTHY"
    return ({"type": spec.get("type"), "clusterIP": spec.get("clusterIP"), "ports": ports[:MAX_LISTED],
             "selector": spec.get("selector") or {}, "readyEndpoints": ready or 0}, [], health)


def _endpoint_slice(walk: _Walk, obj: dict[str, Any]) -> Walked:
    namespace = _meta(obj).get("namespace", "")
    endpoints = [e for e in obj.get("endpoints") or [] if isinstance(e, dict)]
    service = _labels(obj).get("kubernetes.io/service-name")
    lineage = [walk.key("SERVICE", service, namespace)] if service else []
    lineage += [walk.key("POD", e["targetRef"]["name"], e["targetRef"].get("namespace") or namespace)
                for e in endpoints if isinstance(e.get("targetRef"), dict) and e["targetRef"].get("kind") == "Pod"
                and isinstance(e["targetRef"].get("name"), str)]
    ready = sum(_ready(e) for e in endpoints)
    health = "HEALTHY" if endpoints and ready == len(endpoints) else ("DEGRADED" if ready else "UNHEALTHY")
    return {"addressType": obj.get("addressType"), "endpoints": len(endpoints), "ready": ready}, lineage, health


def _ingress(walk: _Walk, obj: dict[str, Any]) -> Walked:
    spec, namespace = _spec(obj), _meta(obj).get("namespace", "")
    backends = [spec.get("defaultBackend") or {}] + [
        path.get("backend") or {} for rule in spec.get("rules") or [] if isinstance(rule, dict)
        for path in (rule.get("http") or {}).get("paths") or [] if isinstance(path, dict)]
    services = {b["service"]["name"] for b in backends if isinstance(b.get("service"), dict)
                and isinstance(b["service"].get("name"), str)}
    hosts = [rule.get("host") for rule in spec.get("rules") or [] if isinstance(rule, dict) and rule.get("host")]
    balanced = ((_status(obj).get("loadBalancer") or {}).get("ingress"))
    return ({"class": spec.get("ingressClassName"), "hosts": hosts[:MAX_LISTED]},
            [walk.key("SERVICE", s, namespace) for s in sorted(services)], "HEALTHY" if balanced else "UNKNOWN")


def _claim(walk: _Walk, obj: dict[str, Any]) -> Walked:
    spec, phase = _spec(obj), _status(obj).get("phase")
    lineage = [walk.key("PERSISTENT_VOLUME", spec["volumeName"])] if spec.get("volumeName") else []
    return ({"phase": phase, "storageClass": spec.get("storageClassName"),
             "request": ((spec.get("resources") or {}).get("requests") or {}).get("storage")}, lineage,
            {"Bound": "HEALTHY", "Pending": "DEGRADED", "Lost": "UNHEALTHY"}.get(phase, "UNKNOWN"))


def _volume(walk: _Walk, obj: dict[str, Any]) -> Walked:
    spec, phase = _spec(obj), _status(obj).get("phase")
    return ({"phase": phase, "storageClass": spec.get("storageClassName"),
             "capacity": (spec.get("capacity") or {}).get("storage")}, [],
            {"Bound": "HEALTHY", "Available": "HEALTHY", "Released": "DEGRADED", "Failed": "UNHEALTHY"}.get(
                phase, "UNKNOWN"))


KIND_WALKS = {
    "NAMESPACE": _namespace, "NODE": _node, "POD": _pod, "DEPLOYMENT": _deployment, "REPLICASET": _replica_set,
    "STATEFULSET": _stateful_set, "DAEMONSET": _daemon_set, "JOB": _job, "CRONJOB": _cron_job,
    "SERVICE": _service, "ENDPOINT_SLICE": _endpoint_slice, "INGRESS": _ingress,
    "PERSISTENT_VOLUME_CLAIM": _claim, "PERSISTENT_VOLUME": _volume,
}


# ---- reading a plain object defensively: an API answer is input, any field may be missing

def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return _dict(obj.get("metadata"))


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    return _dict(obj.get("spec"))


def _status(obj: dict[str, Any]) -> dict[str, Any]:
    return _dict(obj.get("status"))


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in _dict(_meta(obj).get("labels")).items() if isinstance(v, str)}


def _condition(obj: dict[str, Any], type_: str) -> str | None:
    return next((c.get("status") for c in _status(obj).get("conditions") or []
                 if isinstance(c, dict) and c.get("type") == type_), None)


def _ready(endpoint: Any) -> int:
    return int(isinstance(endpoint, dict) and _dict(endpoint.get("conditions")).get("ready") is not False)


def _bounded(metadata: dict[str, Any]) -> dict[str, Any]:
    """``metadata`` within the catalog's bound: labels are dropped first, then owners."""
    for drop in ((), ("labels",), ("labels", "owners")):
        kept = {k: v for k, v in metadata.items() if k not in drop}
        if len(json.dumps(kept, separators=(",", ":")).encode()) <= MAX_METADATA_BYTES:
            return kept
    return kept


def image_parts(ref: str) -> tuple[str, str, str, str | None]:
    """(registry, repository, tag, digest) of an image reference, Docker Hub's defaults filled in."""
    name, _, digest = ref.partition("@")
    first, slash, rest = name.partition("/")
    registry, path = (first, rest) if slash and ("." in first or ":" in first or first == "localhost") \
        else ("docker.io", name)
    repository, _, tag = path.rpartition(":") if ":" in path else (path, "", "")
    return registry, repository, tag or ("" if digest else "latest"), digest or None
