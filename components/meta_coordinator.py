"""The meta-coordinator: Phase 4 convergence and the final report (seed 001 "Report Aggregation").

One Job runs ``larry converge``: it waits at the all-Larry barrier, aggregates the per-Larry
reports into the execution summary and archives the run. It holds the meta-coordinator's
orchestration budget and lives in the Redis hub's namespace, the one namespace of the stack
no single Larry owns.
"""
from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import kube
from components.larry import (
    COORDINATION_DIR,
    PLAN_MOUNT,
    PLAN_PATH,
    RESULTS_DIR,
    RUNTIME_UID,
    WORKER_BACKOFF_LIMIT,
    PlanDocument,
    plan_volume,
    redis_env,
)
from plan import environment as envvar
from plan import labels as contract
from plan.model import StackConfig
from plan.quantities import ResourceList, Resources

JOB_NAME = "larry-converge"
#: Aggregation reads JSON reports and writes one Markdown summary and an archive.
RESOURCES = Resources(ResourceList("250m", "256Mi"), ResourceList("500m", "512Mi"))
REPORT_STORAGE = "1Gi"


@dataclass(frozen=True)
class MetaCoordinatorArgs:
    cfg: StackConfig
    plan: PlanDocument
    namespace: str
    #: The RedisHA component: its namespace and password Secret must exist first.
    depends_on: pulumi.Resource


class MetaCoordinator(pulumi.ComponentResource):
    def __init__(self, name: str, args: MetaCoordinatorArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("larry:index:MetaCoordinator", name, None, opts)
        cfg, ns, meta = args.cfg, args.namespace, args.cfg.budget.meta
        child = kube.opts(self, depends_on=[args.depends_on])
        labels = kube.labels("larry-meta-coordinator", JOB_NAME, "meta-coordinator", app="larry-meta-coordinator")
        k8s.core.v1.ConfigMap(f"{name}-plan", metadata=kube.metadata(f"{JOB_NAME}-plan", ns, labels),
                              data={"plan.yaml": args.plan.text}, opts=child)
        k8s.core.v1.PersistentVolumeClaim(f"{name}-reports", metadata=kube.metadata(
            f"{JOB_NAME}-reports", ns, labels), spec={
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": REPORT_STORAGE}}}, opts=child)
        container = kube.container(
            "converge", cfg.runtime_image, RESOURCES.as_dict(), command=["larry", "converge", "--plan", PLAN_PATH],
            env=kube.env({envvar.TOKEN_BUDGET: meta.orchestration_tokens,
                          envvar.DEADLINE_MINUTES: cfg.execution_window_minutes,
                          envvar.COORDINATION_DIR: COORDINATION_DIR, envvar.RESULTS_DIR: RESULTS_DIR})
            + redis_env(cfg),
            mounts=[PLAN_MOUNT, {"name": "coordination", "mountPath": COORDINATION_DIR}])
        volumes = [plan_volume(f"{JOB_NAME}-plan"),
                   {"name": "coordination", "persistentVolumeClaim": {"claimName": f"{JOB_NAME}-reports"}}]
        window = cfg.execution_window_minutes
        k8s.batch.v1.Job(f"{name}-converge", metadata=kube.metadata(JOB_NAME, ns, labels, {
            contract.TOKENS: str(meta.orchestration_tokens),
            contract.EMERGENCY_RESERVE: str(meta.emergency_reserve_tokens),
            contract.MINUTES: str(window),
            contract.WINDOW: str(window),
            **kube.SKIP_AWAIT,
        }), spec={
            # It waits at the barrier from the start, so its deadline is the whole window.
            "backoffLimit": WORKER_BACKOFF_LIMIT, "activeDeadlineSeconds": window * 60,
            "template": {"metadata": {"labels": labels}, "spec": kube.pod_spec(
                [container], uid=RUNTIME_UID, gid=RUNTIME_UID, volumes=volumes, restartPolicy="OnFailure")}},
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(delete_before_replace=True)))
        self.job = JOB_NAME
        self.register_outputs({"job": JOB_NAME, "tokenBudget": meta.orchestration_tokens})
