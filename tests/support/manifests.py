"""Offline validation of Kubernetes manifests against the target cluster's OpenAPI schema."""
from __future__ import annotations

import kubernetes_validate

#: k3s v1.31, the cluster line the stacks target; strict: unknown fields fail.
KUBERNETES_VERSION = "1.31.0"
#: Custom resources are not in the Kubernetes schema; tests check them structurally.
CRD_KINDS = frozenset({"ServiceMonitor", "PrometheusRule"})


def validate_manifest(manifest: dict) -> list[str]:
    """Schema problems of one manifest (empty when valid); CRD kinds are not checked here."""
    if manifest.get("kind") in CRD_KINDS:
        return []
    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        name = manifest.get("metadata", {}).get("name")
        return [f"{manifest.get('kind')} {name}: {err.message} at {list(err.path)}"]
    return []
