"""The whole stack from its config: what ``__main__`` builds and exports, in testable form."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi

from components import kube
from components.catalog import Catalog, CatalogArgs
from components.larry import ClusterReader, ClusterReaderArgs, Larry, LarryArgs
from components.meta_coordinator import MetaCoordinator, MetaCoordinatorArgs
from components.namespace import LarryNamespace, LarryNamespaceArgs
from components.observability import Observability, ObservabilityArgs
from components.redis_ha import RedisHA, RedisHAArgs
from components.runtime_pod import RuntimePods
from plan.loader import CONFIG_KEYS, load_config, parse_config_value
from plan.model import PROJECT, AgentProfile, StackConfig
from plan.model import Larry as LarryConfig

#: Where Pulumi.yaml and the stack files are: paths in the config are relative to it.
PROJECT_DIR = Path(__file__).resolve().parents[1]


def read_config() -> StackConfig:
    """The ``larry:*`` values the engine passes, validated; raises ConfigError.

    Every ``larry:*`` key the stack sets is read, not only the ones the project knows, so a
    misspelt key fails the program exactly as it fails the stack-file loader."""
    conf = pulumi.Config(PROJECT)
    given = {*pulumi.runtime.config.CONFIG.get(), *pulumi.runtime.config.get_config_env()}
    keys = {key.removeprefix(f"{PROJECT}:") for key in given if key.startswith(f"{PROJECT}:")}
    raw = {key: conf.get(key) for key in sorted(keys | set(CONFIG_KEYS))}
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


def agents_in(cfg: StackConfig, namespace: str) -> tuple[AgentProfile, ...]:
    """The profiles the workers and masters of ``namespace`` run, each once, in plan order."""
    used = [cfg.agent_of(w) for larry, w in cfg.workers if larry.namespace == namespace] + [
        cfg.agent_of(m) for larry in cfg.larrys if larry.namespace == namespace for m in larry.masters]
    return tuple({profile.name: profile for profile in used if profile}.values())


def build(cfg: StackConfig) -> dict[str, Any]:
    """Create every component of the stack; returns the stack outputs."""
    opts = pulumi.ResourceOptions(providers=[kube.provider(cfg)])
    pods = RuntimePods.of(cfg)
    catalog = cfg.catalog
    # The catalog keeps its state on the hub, so its namespace is one of the hub's clients.
    clients = cfg.namespaces + ((catalog.namespace,) if catalog.enabled else ())
    redis = RedisHA("redis", RedisHAArgs(cfg.redis, clients, cfg.observability, cfg.image_pull_secrets, cfg.only_node), opts)
    namespaces = {
        ns: LarryNamespace(ns, LarryNamespaceArgs(
            ns, tuple(larry for larry in cfg.larrys if larry.namespace == ns), cfg.redis, redis.password,
            cfg.observability.prometheus_namespace, agents_in(cfg, ns)), opts)
        for ns in cfg.namespaces
    }
    reader = (ClusterReader("cluster-read", ClusterReaderArgs(cfg.stack), opts)
              if any(larry.cluster_read for larry in cfg.larrys) else None)
    api_servers = tuple(sorted(node.ip for node in cfg.nodes.values() if node.role == "master"))
    window = cfg.execution_window_minutes
    larrys = [Larry(larry.id, LarryArgs(
        larry=larry, pods=pods, execution_window_minutes=window, api_servers=api_servers,
        observability=cfg.observability, namespace=namespaces[larry.namespace], redis=redis,
        cluster_reader=reader, agents={w.name: cfg.agent_of(w) for w in larry.workers if cfg.agent_of(w)},
        master_agents={m.name: cfg.agent_of(m) for m in larry.masters if cfg.agent_of(m)}), opts)
        for larry in cfg.larrys]
    # The stack-wide parts live in the Redis hub's namespace, the one no single Larry owns.
    meta = MetaCoordinator("meta-coordinator", MetaCoordinatorArgs(
        budget=cfg.budget.meta, pods=pods, execution_window_minutes=window, namespace=cfg.redis.namespace,
        depends_on=redis, node=cfg.only_node), opts)
    Observability("observability", ObservabilityArgs(
        enabled=cfg.observability, stack=cfg.stack, larry_namespaces=cfg.namespaces,
        execution_window_minutes=window, orchestration_dashboard=cfg.queued, reserve_trigger=cfg.budget.reserve_trigger,
        namespace=cfg.redis.namespace, depends_on=redis.namespace), opts)
    if catalog.enabled:
        Catalog("catalog", CatalogArgs(
            catalog=catalog, pods=pods, password=redis.password, writer_namespaces=cfg.namespaces,
            observability=cfg.observability,
            baseline=(PROJECT_DIR / catalog.baseline).read_text(encoding="utf-8") if catalog.baseline else None,
            depends_on=(redis, *namespaces.values())), opts)
    return {
        **({"catalogUrl": catalog.url} if catalog.enabled else {}),
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
