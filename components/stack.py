"""The whole stack from its config: what ``__main__`` builds and exports, in testable form."""
from __future__ import annotations

from typing import Any

import pulumi

from components import kube
from components.larry import ClusterReader, Larry, LarryArgs, PlanDocument
from components.meta_coordinator import MetaCoordinator, MetaCoordinatorArgs
from components.namespace import LarryNamespace, LarryNamespaceArgs
from components.observability import Observability, ObservabilityArgs
from components.redis_ha import RedisHA, RedisHAArgs
from plan.loader import CONFIG_KEYS, load_config, parse_config_value
from plan.model import PROJECT, StackConfig
from plan.model import Larry as LarryConfig


def read_config() -> StackConfig:
    """The ``larry:*`` values the engine passes, validated; raises ConfigError."""
    conf = pulumi.Config(PROJECT)
    raw = {key: conf.get(key) for key in CONFIG_KEYS}
    values = {key: parse_config_value(text) for key, text in raw.items() if text is not None}
    return load_config(values, pulumi.get_stack())


def budget(larry: LarryConfig) -> dict[str, Any]:
    """A Larry's budget figures, all taken from the config's arithmetic."""
    return {
        "tokenBudget": larry.token_budget,
        "allocatedTokens": larry.allocated_tokens,
        "masters": {m.name: {"personalTokens": m.personal_tokens, "workerPoolTokens": m.worker_pool_tokens,
                             "poolDraw": larry.pool_draw(m.name)} for m in larry.masters},
    }


def build(cfg: StackConfig) -> dict[str, Any]:
    """Create every component of the stack; returns the stack outputs."""
    opts = pulumi.ResourceOptions(providers=[kube.provider(cfg)])
    plan = PlanDocument.of(cfg)
    redis = RedisHA("redis", RedisHAArgs(cfg.redis, cfg.namespaces, cfg.observability.service_monitors), opts)
    namespaces = {
        ns: LarryNamespace(ns, LarryNamespaceArgs(
            ns, tuple(larry for larry in cfg.larrys if larry.namespace == ns), cfg.redis, redis.password), opts)
        for ns in cfg.namespaces
    }
    reader = ClusterReader("cluster-read", cfg.stack, opts) if any(l.cluster_read for l in cfg.larrys) else None
    larrys = [Larry(larry.id, LarryArgs(cfg, larry, plan, namespaces[larry.namespace], reader), opts)
              for larry in cfg.larrys]
    meta = MetaCoordinator("meta-coordinator", MetaCoordinatorArgs(cfg, plan, cfg.redis.namespace, redis), opts)
    Observability("observability", ObservabilityArgs(cfg, cfg.redis.namespace, redis.namespace), opts)
    return {
        "larrys": {
            larry.id: {
                "namespace": component.namespace, "coordinatorDns": component.coordinator_dns,
                "workerJobs": component.worker_jobs, "budget": budget(larry)}
            for larry, component in zip(cfg.larrys, larrys)
        },
        "budget": {"systemTokens": cfg.budget.system_tokens, "allocatedTokens": cfg.allocated_tokens,
                   "larryTokens": cfg.larry_tokens, "metaCoordinatorTokens": cfg.budget.meta.total_tokens},
        "metaCoordinatorJob": meta.job,
        "redis": redis.endpoints,
        # The password leaves the program only as a secret: `pulumi stack output` masks it.
        "redisPassword": redis.password,
    }
