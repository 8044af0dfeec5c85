"""What every pod running the larry runtime is given, alike for coordinators, worker Jobs and
the meta-coordinator: the runtime image and user, the plan mounted read-only, the
coordination volume, and the address and password of the Redis hub.

Paths, ConfigMap keys and the user come from ``plan.pods`` and variable names from
``plan.environment``, the names the runtime reads, so what is rendered here and what the
runtime looks for cannot drift apart. Not guaranteed: that the image runs a runtime of this
tree; ``runtimeImage`` names whatever image the stack config gives.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from components import kube
from components.namespace import AUTH_KEY, AUTH_SECRET
from plan import environment as envvar
from plan import labels as contract
from plan.model import Redis, StackConfig
from plan.pods import COORDINATION_DIR, LARRY_ID_KEY, PLAN_DIR, PLAN_KEY, RESULTS_DIR, RUNTIME_UID, SLICES_DIR

#: Both volumes, where every runtime process looks for them.
MOUNTS = ({"name": "plan", "mountPath": PLAN_DIR, "readOnly": True},
          {"name": "coordination", "mountPath": COORDINATION_DIR})
COORDINATION_ENV = kube.env({envvar.COORDINATION_DIR: COORDINATION_DIR, envvar.RESULTS_DIR: RESULTS_DIR})


@dataclass(frozen=True)
class PlanDocument:
    """The stack's plan as pods read it, rendered once per program run: one slice per Larry
    (``StackConfig.slice_documents``), so what a Larry's ConfigMap holds grows with that
    Larry, not with the stack."""
    slices: Mapping[str, str]

    @classmethod
    def of(cls, cfg: StackConfig) -> PlanDocument:
        return cls(cfg.slice_documents())

    def digest(self, larry_id: str) -> str:
        """Changes exactly when the Larry's slice does: its coordinator rolls then, and only then."""
        return hashlib.sha256(self.slices[larry_id].encode()).hexdigest()

    def config_map_data(self, larry_id: str) -> dict[str, str]:
        """A plan ConfigMap's data: the Larry's slice, and its id, which the policy pack checks."""
        return {PLAN_KEY: self.slices[larry_id], LARRY_ID_KEY: larry_id}

    @staticmethod
    def all_slices_volume(config_maps: Mapping[str, str]) -> dict[str, Any]:
        """A volume holding every slice, ``<larry id>.yaml`` under SLICES_DIR, from each Larry's
        ConfigMap by Larry id: the whole plan, for the meta-coordinator."""
        subdir = SLICES_DIR.removeprefix(f"{PLAN_DIR}/")
        return {"projected": {"sources": [
            {"configMap": {"name": name, "items": [{"key": PLAN_KEY, "path": f"{subdir}/{larry_id}.yaml"}]}}
            for larry_id, name in config_maps.items()]}}


@dataclass(frozen=True)
class RuntimePods:
    """What the stack gives every runtime pod: one image, one plan, one Redis hub."""

    image: str
    plan: PlanDocument
    redis: Redis
    #: Secrets every namespace of the stack holds for pulling its images.
    pull_secrets: tuple[str, ...] = ()
    #: Where the run's keys live on the hub: every key and channel starts with it.
    key_prefix: str = ""
    #: The run id, which labels every object of the run; None: the run is not named.
    run_id: str | None = None

    @classmethod
    def of(cls, cfg: StackConfig) -> RuntimePods:
        return cls(cfg.runtime_image, PlanDocument.of(cfg), cfg.redis, cfg.image_pull_secrets, cfg.key_prefix,
                   cfg.run_id)

    def run_labels(self) -> dict[str, str]:
        """The run's label, for the objects of the run (not the hub's, which outlive runs)."""
        return {contract.EXECUTION: self.run_id} if self.run_id else {}

    def redis_env(self) -> list[dict[str, Any]]:
        """How a runtime process finds and authenticates to the Redis hub, and where on it the
        run's keys live.

        The sentinels require the servers' password too, under the name the runtime reads for them.
        """
        redis = self.redis
        return kube.env({
            envvar.REDIS_SENTINELS: f"{redis.sentinel_host}:{redis.sentinel_port}",
            envvar.REDIS_MASTER_NAME: redis.master_name,
            envvar.REDIS_URL: f"redis://{redis.host}:{redis.port}/0",
            **({envvar.KEY_PREFIX: self.key_prefix} if self.key_prefix else {}),
        }) + [kube.secret_env(name, AUTH_SECRET, AUTH_KEY)
              for name in (envvar.REDIS_PASSWORD, envvar.REDIS_SENTINEL_PASSWORD)]

    def container(self, name: str, resources: Mapping[str, Any], command: Sequence[str],
                  env: Sequence[Mapping[str, Any]], *, image: str | None = None,
                  mounts: Sequence[Mapping[str, Any]] = (), **extra: Any) -> dict[str, Any]:
        """A runtime container with both volumes (and ``mounts``) mounted; ``image`` replaces the
        runtime image (an agent's image, built on it)."""
        return kube.container(name, image or self.image, resources, command=command, env=env,
                              mounts=[*MOUNTS, *mounts], **extra)

    def pod_spec(self, container: Mapping[str, Any], plan: str | Mapping[str, Any], coordination_claim: str,
                 volumes: Sequence[Mapping[str, Any]] = (), **extra: Any) -> dict[str, Any]:
        """A pod of one runtime container, as the runtime's user so the coordination volume is
        writable; ``plan`` is the plan ConfigMap's name or the plan volume's source."""
        plan_source = {"configMap": {"name": plan}} if isinstance(plan, str) else plan
        volumes = [{"name": "plan", **plan_source},
                   {"name": "coordination", "persistentVolumeClaim": {"claimName": coordination_claim}}, *volumes]
        return kube.pod_spec([container], uid=RUNTIME_UID, gid=RUNTIME_UID, volumes=volumes,
                             pull_secrets=self.pull_secrets, **extra)
