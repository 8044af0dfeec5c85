"""The Larry component: one domain coordinator, its worker Jobs and everything they need.

Per Larry (seed 002 "Kubernetes Deployments"): the plan ConfigMap, the coordination volume
(seed 001 "Shared State Volume"), least-privilege RBAC, the coordinator Deployment pinned to
its master node with its Service and ServiceMonitor, one Job per worker pinned to that
worker's node (seed 001 "Node Affinity Rules") and running its agent profile, if it has one
(``components.agents``), a PodDisruptionBudget for the workers (seed
risk 3) and the egress to the API server the coordinator needs. What exists once per
namespace comes from the ``LarryNamespace`` the Larry is given.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import pulumi
import pulumi_kubernetes as k8s

from components import agents, kube
from components.observability import service_monitor
from components.runtime_pod import COORDINATION_ENV, RuntimePods
from plan import environment as envvar
from plan import labels as contract
from plan.model import AgentProfile, Worker
from plan.model import Larry as LarryConfig
from plan.pods import COORDINATOR_PORT, PLAN_PATH, WORKER_BACKOFF_LIMIT

#: Coordinators run on the k3s servers, which may carry either taint name.
CONTROL_PLANE_TOLERATIONS = [
    {"key": key, "operator": "Exists", "effect": "NoSchedule"}
    for key in ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
]
READ = ["get", "list", "watch"]
#: The coordinator manages its own worker Jobs and reads their pods, logs and events.
COORDINATOR_RULES = [
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": [*READ, "create", "delete", "patch"]},
    {"apiGroups": [""], "resources": ["pods", "pods/log", "events"], "verbs": READ},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": READ},
]
#: clusterRead Larrys scan and inventory the cluster (seed 002). Resources are listed one by
#: one because a wildcard would include Secrets (and Helm 3 release records, which are Secrets).
CLUSTER_READ_RULES = [
    {"apiGroups": [group], "resources": resources, "verbs": READ}
    for group, resources in (
        ("", ["namespaces", "nodes", "pods", "services", "endpoints", "configmaps", "events",
              "persistentvolumes", "persistentvolumeclaims", "serviceaccounts", "resourcequotas",
              "limitranges", "replicationcontrollers"]),
        ("apps", ["deployments", "statefulsets", "daemonsets", "replicasets"]),
        ("batch", ["jobs", "cronjobs"]),
        ("networking.k8s.io", ["ingresses", "networkpolicies"]),
        ("rbac.authorization.k8s.io", ["roles", "rolebindings", "clusterroles", "clusterrolebindings"]),
        ("policy", ["poddisruptionbudgets"]),
        ("autoscaling", ["horizontalpodautoscalers"]),
        ("storage.k8s.io", ["storageclasses"]),
        ("apiextensions.k8s.io", ["customresourcedefinitions"]),
    )
]


@dataclass(frozen=True)
class ClusterReaderArgs:
    #: The stack's name: it qualifies the name of the cluster-scoped role.
    stack: str


class ClusterReader(pulumi.ComponentResource):
    """The read-only ClusterRole the clusterRead Larrys bind: one per stack, the rules being
    the same for all. Cluster-scoped names must be unique across stacks sharing a cluster."""

    role_name: str

    def __init__(self, name: str, args: ClusterReaderArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("larry:index:ClusterReader", name, None, opts)
        self.role_name = f"larry:{args.stack}:cluster-read"
        k8s.rbac.v1.ClusterRole(name, metadata=kube.metadata(
            self.role_name, None, kube.labels("larry", args.stack, "rbac")), rules=CLUSTER_READ_RULES,
            opts=kube.opts(self))
        self.register_outputs({"roleName": self.role_name})


@dataclass(frozen=True)
class LarryArgs:
    larry: LarryConfig
    #: Image, plan and Redis hub, as every runtime pod of the stack gets them.
    pods: RuntimePods
    #: The stack's execution window (minutes), which the worker Jobs carry for the policy pack.
    execution_window_minutes: int
    #: IPs of the k3s servers, where the API server listens.
    api_servers: tuple[str, ...]
    #: Whether the cluster runs prometheus-operator, for the coordinator's ServiceMonitor.
    service_monitors: bool
    #: The LarryNamespace this Larry runs in: its namespace, guardrails and password Secret.
    namespace: pulumi.Resource
    #: The stack's read-only ClusterRole; required when the Larry has clusterRead.
    cluster_reader: ClusterReader | None = None
    #: The agent profile each worker runs, by worker name; a worker not listed runs the
    #: built-in simulated payload. Its egress policy is the LarryNamespace's.
    agents: Mapping[str, AgentProfile] = field(default_factory=dict)


class Larry(pulumi.ComponentResource):
    namespace: str
    coordinator_dns: str
    worker_jobs: list[str]

    def __init__(self, name: str, args: LarryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("larry:index:Larry", name, None, opts)
        self._name, self._args, self._larry = name, args, args.larry
        larry = args.larry
        self.namespace = larry.namespace
        self._namespace = args.namespace
        self._child = kube.opts(self, depends_on=[args.namespace])
        # A Job's pod template is immutable: a changed worker is replaced, and with a fixed
        # name the old Job has to go first.
        self._job_opts = pulumi.ResourceOptions.merge(self._child, pulumi.ResourceOptions(delete_before_replace=True))
        self._coordinator = f"{larry.id}-coordinator"
        self._worker_sa = f"{larry.id}-worker"
        self._plan_map, self._claim = f"{larry.id}-plan", f"{larry.id}-coordination"
        self._shared_env = args.pods.redis_env() + COORDINATION_ENV

        self._storage()
        self._rbac(args.cluster_reader)
        self._coordinator_workload()
        for worker in larry.workers:
            self._worker_job(worker)
        self.worker_jobs = [worker.name for worker in larry.workers]
        self._disruption_budget()
        self.coordinator_dns = f"{self._coordinator}.{larry.namespace}.svc.cluster.local"
        self.register_outputs({
            "namespace": self.namespace, "coordinatorDns": self.coordinator_dns, "workerJobs": self.worker_jobs,
        })

    # ---- plan and coordination volume
    def _storage(self) -> None:
        larry, ns = self._larry, self._larry.namespace
        k8s.core.v1.ConfigMap(f"{self._name}-plan", metadata=kube.metadata(
            self._plan_map, ns, self._labels("plan", larry.id)),
            data=self._args.pods.plan.config_map_data(larry.id), opts=self._child)
        k8s.core.v1.PersistentVolumeClaim(f"{self._name}-coordination", metadata=kube.metadata(
            self._claim, ns, self._labels("coordination", larry.id)), spec={
            "accessModes": ["ReadWriteMany"], "storageClassName": larry.storage_class,
            "resources": {"requests": {"storage": larry.storage}}}, opts=self._child)

    # ---- identities and permissions
    def _rbac(self, cluster_reader: ClusterReader | None) -> None:
        larry, ns = self._larry, self._larry.namespace
        labels = self._labels("rbac", larry.id)
        k8s.core.v1.ServiceAccount(f"{self._name}-coordinator", metadata=kube.metadata(
            self._coordinator, ns, labels), opts=self._child)
        k8s.rbac.v1.Role(f"{self._name}-coordinator", metadata=kube.metadata(self._coordinator, ns, labels),
                         rules=COORDINATOR_RULES, opts=self._child)
        k8s.rbac.v1.RoleBinding(f"{self._name}-coordinator", metadata=kube.metadata(self._coordinator, ns, labels),
                                role_ref=self._role_ref("Role", self._coordinator),
                                subjects=[self._subject(self._coordinator)], opts=self._child)
        api_clients = [contract.COORDINATOR_APP]
        if larry.cluster_read:
            if cluster_reader is None:
                raise ValueError(f"{larry.id} has clusterRead: its LarryArgs need the stack's ClusterReader")
            # Workers get an identity, and an API token, only when their Larry reads the cluster.
            k8s.core.v1.ServiceAccount(f"{self._name}-worker", metadata=kube.metadata(self._worker_sa, ns, labels),
                                       opts=self._child)
            # Cluster-scoped, so qualified by namespace and Larry to stay unique in the cluster.
            k8s.rbac.v1.ClusterRoleBinding(
                f"{self._name}-cluster-read", metadata=kube.metadata(f"larry:{ns}:{larry.id}:cluster-read", None, labels),
                role_ref=self._role_ref("ClusterRole", cluster_reader.role_name),
                subjects=[self._subject(self._coordinator), self._subject(self._worker_sa)],
                opts=kube.opts(self, depends_on=[self._namespace, cluster_reader]))
            api_clients.append(contract.WORKER_APP)
        self._api_egress(api_clients)

    def _api_egress(self, apps: list[str]) -> None:
        """The pods holding an API token may reach the API server on the k3s servers, nothing more."""
        k8s.networking.v1.NetworkPolicy(f"{self._name}-kube-api", metadata=kube.metadata(
            f"{self._larry.id}-kube-api", self._larry.namespace, self._labels("network", self._larry.id)), spec={
            "podSelector": {"matchLabels": {contract.LARRY: self._larry.id},
                            "matchExpressions": [{"key": contract.APP, "operator": "In", "values": apps}]},
            "policyTypes": ["Egress"],
            # 443 is the kubernetes Service (10.43.0.1 on k3s), 6443 the servers it forwards to;
            # CNIs differ in which of the two the policy sees, so both are admitted.
            "egress": [{"to": [{"ipBlock": {"cidr": f"{ip}/32"}} for ip in self._args.api_servers],
                        "ports": [{"protocol": "TCP", "port": port} for port in (443, 6443)]}]}, opts=self._child)

    def _role_ref(self, kind: str, name: str) -> dict[str, str]:
        return {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name}

    def _subject(self, account: str) -> dict[str, str]:
        return {"kind": "ServiceAccount", "name": account, "namespace": self._larry.namespace}

    # ---- coordinator
    def _coordinator_workload(self) -> None:
        larry, pods, ns = self._larry, self._args.pods, self._larry.namespace
        selector = {contract.APP: contract.COORDINATOR_APP, contract.LARRY: larry.id}
        labels = self._labels("coordinator", self._coordinator, **selector, name=contract.COORDINATOR_APP)
        container = pods.container(
            "coordinator", larry.coordinator.as_dict(),
            command=["larry", "coordinator", "--plan", PLAN_PATH, "--larry", larry.id,
                     "--port", str(COORDINATOR_PORT)],
            env=kube.env({envvar.LARRY_ID: larry.id, envvar.TOKEN_BUDGET: larry.token_budget,
                          envvar.DEADLINE_MINUTES: larry.deadline_minutes})
            + self._shared_env + [kube.field_env(envvar.NAMESPACE, "metadata.namespace")],
            ports=[{"name": "http", "containerPort": COORDINATOR_PORT, "protocol": "TCP"}],
            livenessProbe=kube.http_probe("/healthz", "http", 20),
            readinessProbe=kube.http_probe("/healthz", "http", 10))
        k8s.apps.v1.Deployment(f"{self._name}-coordinator", metadata=kube.metadata(self._coordinator, ns, labels), spec={
            "replicas": 1,
            # One coordinator per Larry at any time: never run old and new side by side.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector},
            "template": {
                # The digest rolls the coordinator when the plan changes; Jobs read it at start.
                "metadata": {"labels": labels, "annotations": {contract.PLAN_DIGEST: pods.plan.digest(larry.id)}},
                "spec": pods.pod_spec(container, self._plan_map, self._claim, service_account=self._coordinator,
                                      affinity=kube.node_affinity([larry.node]),
                                      tolerations=CONTROL_PLANE_TOLERATIONS)}}, opts=self._child)
        k8s.core.v1.Service(f"{self._name}-coordinator", metadata=kube.metadata(self._coordinator, ns, labels), spec={
            "type": "ClusterIP", "selector": selector,
            "ports": [{"name": "http", "port": COORDINATOR_PORT, "targetPort": "http", "protocol": "TCP"}]},
            opts=self._child)
        if self._args.service_monitors:
            service_monitor(f"{self._name}-coordinator", self._coordinator, ns, labels, selector, "http", self._child)

    # ---- workers
    def _worker_job(self, worker: Worker) -> None:
        larry, pods = self._larry, self._args.pods
        profile = self._args.agents.get(worker.name)
        selector = {contract.APP: contract.WORKER_APP, contract.LARRY: larry.id, contract.WORKER: worker.name}
        if worker.master:
            selector[contract.MASTER] = worker.master
        if profile:
            selector[contract.AGENT] = profile.name
        labels = self._labels("worker", worker.name, **selector, name=contract.WORKER_APP)
        # Plain numbers the policy pack reads during preview, when outputs are still unknown.
        annotations = {
            contract.TOKENS: str(worker.tokens),
            contract.MINUTES: str(worker.minutes),
            contract.PHASE_DEADLINE: str(larry.deadline_minutes),
            contract.WINDOW: str(self._args.execution_window_minutes),
            **({contract.WORKER_TYPE: worker.type} if worker.type else {}),
            **({contract.MASTER: worker.master} if worker.master else {}),
            **kube.SKIP_AWAIT,
        }
        env = kube.env({envvar.LARRY_ID: larry.id, envvar.WORKER_ID: worker.name,
                        **({envvar.MASTER: worker.master} if worker.master else {}),
                        envvar.TASK_IDS: ",".join(t.id for t in worker.tasks),
                        envvar.TOKEN_BUDGET: worker.tokens, envvar.DEADLINE_MINUTES: worker.minutes})
        command = ["larry", "worker", "--plan", PLAN_PATH, "--larry", larry.id, "--worker", worker.name]
        if profile:
            command, env = agents.command(command, profile), env + agents.env(profile)
        container = pods.container(
            "worker", worker.resources.as_dict(), command=command, env=env + self._shared_env,
            **({"image": profile.image, "mounts": [agents.HOME_MOUNT]} if profile else {}))
        pod = pods.pod_spec(container, self._plan_map, self._claim,
                            volumes=[agents.HOME_VOLUME] if profile else (),
                            service_account=self._worker_sa if larry.cluster_read else None,
                            restartPolicy="OnFailure", affinity=kube.node_affinity([worker.node]))
        k8s.batch.v1.Job(
            f"{self._name}-{worker.name}",
            metadata=kube.metadata(worker.name, larry.namespace, labels, annotations),
            # No ttlSecondsAfterFinished: a Job deleted by its TTL would be re-created, and re-run,
            # by the next `pulumi up`. Finished Jobs go with `larry cleanup` / `pulumi destroy`.
            # Seed risk 1: Kubernetes restarts a failed worker; its task lease expires and is re-claimed.
            spec={"backoffLimit": WORKER_BACKOFF_LIMIT, "activeDeadlineSeconds": worker.minutes * 60,
                  "template": {"metadata": {"labels": labels}, "spec": pod}},
            opts=self._job_opts)

    def _disruption_budget(self) -> None:
        """Seed risk 3 keeps 2 of 4 workers through a drain: half of the Larry's workers, rounded up.

        Jobs have no scale subresource, so only an integer minAvailable is valid for them.
        """
        larry = self._larry
        selector = {contract.APP: contract.WORKER_APP, contract.LARRY: larry.id}
        k8s.policy.v1.PodDisruptionBudget(f"{self._name}-workers", metadata=kube.metadata(
            f"{larry.id}-workers", larry.namespace, self._labels("worker", larry.id, **selector, name=contract.WORKER_APP)),
            spec={"minAvailable": math.ceil(len(larry.workers) / 2), "selector": {"matchLabels": selector}},
            opts=self._child)

    def _labels(self, component: str, instance: str, name: str = "larry", **extra: str) -> dict[str, str]:
        return kube.labels(name, instance, component, **{contract.LARRY: self._larry.id, **extra})
