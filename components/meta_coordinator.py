"""The meta-coordinator: Phase 4 convergence and the final report (seed 001 "Report Aggregation").

One Job runs ``larry converge``: it waits at the all-Larry barrier, aggregates the per-Larry
reports into the execution summary and archives the run. It holds the meta-coordinator's
orchestration budget and lives in the Redis hub's namespace, the one namespace of the stack
no single Larry owns. It reads the whole plan from every Larry's slice, each one a ConfigMap
of its own here: the bytes it is given grow with the stack, no one object does.
"""
from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import kube
from components.runtime_pod import COORDINATION_ENV, PlanDocument, RuntimePods
from plan import environment as envvar
from plan import labels as contract
from plan.model import MetaCoordinator as MetaCoordinatorConfig
from plan.pods import SLICES_DIR, WORKER_BACKOFF_LIMIT
from plan.quantities import ResourceList, Resources

JOB_NAME = "larry-converge"
#: Its app label: neither the runtime nor the policy pack reads it, so it is not in plan.labels.
APP_NAME = "larry-meta-coordinator"
#: Aggregation reads JSON reports and writes one Markdown summary and an archive.
RESOURCES = Resources(ResourceList("250m", "256Mi"), ResourceList("500m", "512Mi"))
REPORT_STORAGE = "1Gi"


@dataclass(frozen=True)
class MetaCoordinatorArgs:
    #: Its share of the system budget: orchestration tokens and the emergency reserve.
    budget: MetaCoordinatorConfig
    #: Image, plan and Redis hub, as every runtime pod of the stack gets them.
    pods: RuntimePods
    #: The stack's execution window (minutes): the Job waits at the barrier for all of it.
    execution_window_minutes: int
    namespace: str
    #: The RedisHA component: its namespace and password Secret must exist first.
    depends_on: pulumi.Resource
    #: A one-node stack's node (StackConfig.only_node): converge runs there too.
    node: str | None = None


class MetaCoordinator(pulumi.ComponentResource):
    def __init__(self, name: str, args: MetaCoordinatorArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("larry:index:MetaCoordinator", name, None, opts)
        ns, meta, window = args.namespace, args.budget, args.execution_window_minutes
        child = kube.opts(self, depends_on=[args.depends_on])
        labels = kube.labels(APP_NAME, JOB_NAME, "meta-coordinator", **{contract.APP: APP_NAME},
                             **args.pods.run_labels())
        # Converge reads the whole plan: every Larry's slice, each a ConfigMap here (a pod mounts
        # only ConfigMaps of its own namespace), so no object grows with the stack.
        plan_maps = {larry_id: f"{JOB_NAME}-plan-{larry_id}" for larry_id in args.pods.plan.slices}
        for larry_id, map_name in plan_maps.items():
            k8s.core.v1.ConfigMap(f"{name}-plan-{larry_id}", metadata=kube.metadata(map_name, ns, labels),
                                  data=args.pods.plan.config_map_data(larry_id), opts=child)
        k8s.core.v1.PersistentVolumeClaim(f"{name}-reports", metadata=kube.metadata(
            f"{JOB_NAME}-reports", ns, labels), spec={
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": REPORT_STORAGE}}}, opts=child)
        container = args.pods.container(
            "converge", RESOURCES.as_dict(), command=["larry", "converge", "--plan", SLICES_DIR],
            env=kube.env({envvar.TOKEN_BUDGET: meta.orchestration_tokens, envvar.DEADLINE_MINUTES: window})
            + COORDINATION_ENV + args.pods.redis_env())
        k8s.batch.v1.Job(f"{name}-converge", metadata=kube.metadata(JOB_NAME, ns, labels, {
            contract.TOKENS: str(meta.orchestration_tokens),
            contract.EMERGENCY_RESERVE: str(meta.emergency_reserve_tokens),
            contract.MINUTES: str(window),
            contract.WINDOW: str(window),
            **kube.SKIP_AWAIT,
        }), spec={
            # It waits at the barrier from the start, so its deadline is the whole window.
            "backoffLimit": WORKER_BACKOFF_LIMIT, "activeDeadlineSeconds": window * 60,
            "template": {"metadata": {"labels": labels}, "spec": args.pods.pod_spec(
                container, PlanDocument.all_slices_volume(plan_maps), f"{JOB_NAME}-reports",
                restartPolicy="OnFailure", **({"affinity": kube.node_affinity([args.node])} if args.node else {}))}},
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(delete_before_replace=True)))
        self.job = JOB_NAME
        self.register_outputs({"job": JOB_NAME, "tokenBudget": meta.orchestration_tokens})
