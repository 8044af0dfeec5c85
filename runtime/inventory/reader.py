"""Reading the cluster through the Kubernetes API with the official ``kubernetes`` client.

Credentials: ``--kubeconfig`` / ``$KUBECONFIG``, else the pod's own ServiceAccount (in-cluster
config: a clusterRead Larry's workers get one bound to the stack's read-only ClusterRole);
never ``~/.kube/config`` unasked (a local run must not inventory whatever cluster the
machine's default context names). Each kind of :data:`KINDS` is listed cluster-wide, page by page
(``limit`` / ``continue``), as raw JSON (no model classes: the walk reads plain dicts).

Secrets and ConfigMaps are listed as *metadata only*: the request asks the API server for a
``PartialObjectMetadataList`` (the Accept header of :data:`METADATA_ONLY`), so their data
never leaves the API server, and whatever the server answers, this module keeps of each of
their items only :data:`SAFE_METADATA` (name, namespace, labels, owners, uid, creation time):
no annotations (kubectl's ``last-applied-configuration`` annotation holds a copy of the
data), no ``managedFields`` (they name the data's keys). A Helm release record (a Secret or
ConfigMap labelled ``owner=helm``) is known by its labels alone.

Guaranteed: a kind the credentials may not list (HTTP 403) or the server does not serve (404)
is skipped and named in :attr:`Reading.skipped`, never fatal; any other failure (no
credentials, unreachable, TLS, another HTTP status, a body that is not a JSON object list)
raises :class:`ReadError` with one line naming the request and what was expected. Not
guaranteed: one consistent snapshot across kinds (each is listed at its own moment, so an
object created in between may name an owner the reading lacks), nor any kind beyond
:data:`KINDS`.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from runtime.catalog.assets import short

#: Objects per page: large clusters are read in bounded answers.
PAGE = 500
#: (connect, read) seconds of one request; a hung API server is a ReadError, not a hang.
REQUEST_TIMEOUT = (5, 60)
#: urllib3 retries of a failed connection before it is reported.
RETRIES = 2
#: The Accept header of a metadata-only list (the API server's PartialObjectMetadataList).
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
#: All of a metadata-only object's metadata that is kept.
SAFE_METADATA = ("name", "namespace", "labels", "ownerReferences", "uid", "creationTimestamp")


class ReadError(Exception):
    """The cluster could not be read; the message is one line naming the request."""


class NoCluster(ReadError):
    """Neither a kubeconfig nor in-cluster config: there is no cluster to read."""


@dataclass(frozen=True)
class Kind:
    """A kind the inventory lists: its asset type, API group/version and resource."""

    type: str
    group_version: str
    resource: str
    metadata_only: bool = False

    @property
    def path(self) -> str:
        return f"/api/v1/{self.resource}" if self.group_version == "v1" else f"/apis/{self.group_version}/{self.resource}"


#: What the inventory reads. Kinds without an asset type of their own (Roles, NetworkPolicies,
#: ...) are left out: the natural key (source, type, namespace, name) could not tell them apart.
KINDS = (
    Kind("NAMESPACE", "v1", "namespaces"),
    Kind("NODE", "v1", "nodes"),
    Kind("POD", "v1", "pods"),
    Kind("SERVICE", "v1", "services"),
    Kind("CONFIGMAP", "v1", "configmaps", metadata_only=True),
    Kind("SECRET", "v1", "secrets", metadata_only=True),
    Kind("PERSISTENT_VOLUME", "v1", "persistentvolumes"),
    Kind("PERSISTENT_VOLUME_CLAIM", "v1", "persistentvolumeclaims"),
    Kind("SERVICE_ACCOUNT", "v1", "serviceaccounts"),
    Kind("DEPLOYMENT", "apps/v1", "deployments"),
    Kind("STATEFULSET", "apps/v1", "statefulsets"),
    Kind("DAEMONSET", "apps/v1", "daemonsets"),
    Kind("REPLICASET", "apps/v1", "replicasets"),
    Kind("JOB", "batch/v1", "jobs"),
    Kind("CRONJOB", "batch/v1", "cronjobs"),
    Kind("ENDPOINT_SLICE", "discovery.k8s.io/v1", "endpointslices"),
    Kind("INGRESS", "networking.k8s.io/v1", "ingresses"),
)


@dataclass
class Reading:
    """What was read: objects by asset type, and the kinds skipped with why."""

    objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def api_client(kubeconfig: str | None, env: Mapping[str, str] = os.environ):
    """A ``kubernetes.client.ApiClient`` for ``kubeconfig``, else in-cluster config; NoCluster
    when neither is there, ReadError when it cannot be loaded."""
    if kubeconfig:
        where = f"kubeconfig {kubeconfig}"
    elif env.get("KUBERNETES_SERVICE_HOST"):
        where = "in-cluster config (the pod's ServiceAccount)"
    else:
        raise NoCluster("no cluster to read: give --kubeconfig or $KUBECONFIG, or run in a pod with a "
                        "ServiceAccount (in-cluster config)")
    # Imported here: only `larry inventory` needs the client, and it is slow to import.
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    configuration = client.Configuration()
    try:
        if kubeconfig:
            config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        else:
            config.load_incluster_config(client_configuration=configuration)
    except (ConfigException, OSError, ValueError, TypeError) as error:
        raise ReadError(f"{where}: cannot be loaded ({_one_line(error)})") from None
    configuration.retries = RETRIES
    return client.ApiClient(configuration)


def read(api, kinds: tuple[Kind, ...] = KINDS) -> Reading:
    """Every object of ``kinds`` that the credentials may list."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    # Each retry would log a warning with a traceback's worth of detail; the ReadError says it once.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    reading = Reading()
    for kind in kinds:
        try:
            reading.objects[kind.type] = _list(api, kind)
        except ApiException as error:
            if error.status == 403:
                reading.skipped.append(f"{kind.resource}.{kind.group_version}: forbidden to this identity (HTTP 403)")
            elif error.status == 404:
                reading.skipped.append(f"{kind.resource}.{kind.group_version}: not served by this API server (HTTP 404)")
            else:
                status = f"HTTP {error.status} {error.reason}" if error.status else _one_line(error.reason)
                raise ReadError(f"GET {kind.path}: {status}") from None
        except (HTTPError, OSError) as error:
            # urllib3 wraps the cause of its last retry; that cause is the one line to show.
            cause = getattr(error, "reason", None) or error
            raise ReadError(f"GET {api.configuration.host}{kind.path}: {_one_line(cause)}") from None
    return reading


def _list(api, kind: Kind) -> list[dict[str, Any]]:
    headers = {"Accept": METADATA_ONLY if kind.metadata_only else "application/json"}
    items: list[dict[str, Any]] = []
    token = None
    while True:
        query = [("limit", PAGE)] + ([("continue", token)] if token else [])
        response = api.call_api(kind.path, "GET", query_params=query, header_params=headers,
                                auth_settings=["BearerToken"], _preload_content=False,
                                _request_timeout=REQUEST_TIMEOUT, _return_http_data_only=True)
        page = parse_list(kind, response.data)
        items += page["items"]
        token = page["metadata"].get("continue")
        if not token:
            return items


def parse_list(kind: Kind, body: bytes | str) -> dict[str, Any]:
    """A list answer's ``{"metadata": {...}, "items": [...]}``, each item an object with a
    named ``metadata`` (only :data:`SAFE_METADATA` of it for a metadata-only kind); ReadError
    naming the request and what was expected otherwise."""
    where = f"GET {kind.path}"
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise ReadError(f"{where}: expected a JSON list, got {short(body[:40])} ({_one_line(error)})") from None
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list) or not isinstance(data.get("metadata", {}), dict):
        raise ReadError(f"{where}: expected a JSON object with an 'items' list, got {short(data)}")
    for i, item in enumerate(items):
        meta = item.get("metadata") if isinstance(item, dict) else None
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
            raise ReadError(f"{where}: items[{i}]: expected an object with metadata.name, got {short(item)}")
    if kind.metadata_only:
        items = [{"metadata": {key: item["metadata"][key] for key in SAFE_METADATA if key in item["metadata"]}}
                 for item in items]
    return {"metadata": data.get("metadata") or {}, "items": items}


def _one_line(error: object) -> str:
    return " ".join(str(error).split())[:300]
