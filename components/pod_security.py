"""Pod Security Standards "restricted" settings, in one place for every pod the program creates.

Every namespace the program owns enforces the restricted profile, so a pod that drifted from
these settings would be rejected by the API server at ``pulumi up`` time rather than run with
more privilege than it needs. The tests check the rendered pods against the profile's rules
independently of this module.
"""
from __future__ import annotations

from typing import Any

#: The profile version the namespaces enforce. Pinned to the Kubernetes version the manifests
#: are validated against, so a cluster upgrade cannot tighten the rules under running Jobs.
ENFORCE_VERSION = "v1.31"

NAMESPACE_LABELS = {
    f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")
} | {
    f"pod-security.kubernetes.io/{mode}-version": ENFORCE_VERSION for mode in ("enforce", "audit", "warn")
}


def pod_security_context(uid: int, gid: int) -> dict[str, Any]:
    """Pod-level context: a fixed non-root identity, and fsGroup so mounted volumes are writable."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": gid,
        "fsGroup": gid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """Container-level context; repeated per container because the profile checks each one."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
