"""The Larry component: one domain coordinator, its masters, its worker Jobs and everything they need.

Per Larry (seed 002 "Kubernetes Deployments"): the plan ConfigMap, the coordination volume
(seed 001 "Shared State Volume"), least-privilege RBAC, the coordinator Deployment pinned to
its master node with its Service and ServiceMonitor, one Deployment of one pod per master
(``larry master``, :mod:`runtime.commands.master`), one Job per worker pinned to that
worker's node (seed 001 "Node Affinity Rules") and running its agent profile, if it has one
(``components.agents``), a PodDisruptionBudget for the workers (seed
risk 3) and the egress to the API server the coordinator needs. What exists once per
namespace comes from the ``LarryNamespace`` the Larry is given.

Masters are Deployments of their own rather than containers beside the coordinator: a master
running an agent gets the profile's image, Secrets and egress NetworkPolicy (selected by
``larry.dev/agent``), which the coordinator — holding the Larry's API token and metrics port —
must not share; and a master restarts (a crash, a failed agent) without taking its
coordinator down. It needs no API token, no Service and no port: it only talks to Redis. It is
pinned to its Larry's master node like the coordinator, sized by ``plan.pods.MASTER_RESOURCES``
(it waits on Redis, and now and then runs an agent CLI), with the same
``Recreate`` strategy (never two pods doing one master's duties).
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
from plan.exits import ExitCode
from plan.model import AgentProfile, Master, Observability, Worker
from plan.model import Larry as LarryConfig
from plan.pods import COORDINATOR_PORT, MASTER_RESOURCES, PLAN_PATH, WORKER_BACKOFF_LIMIT

#: Coordinators run on the k3s servers, which may carry either taint name.
CONTROL_PLANE_TOLERATIONS = [
    {"key": key, "operator": "Exists", "effect": "NoSchedule"}
    for key in ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
]
READ = ["get", "list", "watch"]
#: What a failed worker pod means to its Job: an exit a retry cannot help (usage mistake, or the
#: worker gave up for good: budget, deadline, a failed dependency) fails the Job at once; a pod
#: lost to a drain, preemption or eviction is not a failure of the worker and costs no retry.
WORKER_FAILURE_POLICY = {"rules": [
    {"action": "FailJob", "onExitCodes": {"containerName": "worker", "operator": "In",
                                          "values": [int(ExitCode.USAGE), int(ExitCode.GAVE_UP)]}},
    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
]}
#: The coordinator manages its own worker Jobs and reads their pods, logs and events.
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
        ("discovery.k8s.io", ["endpointslices"]),
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
    #: Whether the cluster runs prometheus-operator, and how its Prometheus finds monitors.
    observability: Observability
    #: The LarryNamespace this Larry runs in: its namespace, guardrails and password Secret.
    namespace: pulumi.Resource
    #: The stack's Redis hub: the coordinator and workers start once its StatefulSets are ready.
    redis: pulumi.Resource
    #: The stack's read-only ClusterRole; required when the Larry has clusterRead.
    cluster_reader: ClusterReader | None = None
    #: The agent profile each worker runs, by worker name; a worker not listed runs the
    #: built-in simulated payload. Its egress policy is the LarryNamespace's.
    agents: Mapping[str, AgentProfile] = field(default_factory=dict)
    #: The agent profile each master runs, by master name; a master not listed is the built-in one.
    master_agents: Mapping[str, AgentProfile] = field(default_factory=dict)


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
        self._coordinator = f"{larry.id}-coordinator"
        self._worker_sa = f"{larry.id}-worker"
        self._plan_map, self._claim = f"{larry.id}-plan", f"{larry.id}-coordination"
        self._shared_env = args.pods.redis_env() + COORDINATION_ENV

        # Pods are created once what they mount, run as and talk to exists: otherwise the
        # controllers' first attempts fail (a missing ServiceAccount is a FailedCreate) and the
        # runtime starts before Redis accepts writes.
        needs = [args.namespace, args.redis, *self._storage(), *self._rbac(args.cluster_reader)]
        self._workload_opts = kube.opts(self, depends_on=needs)
        # A Job's pod template is immutable: a changed worker is replaced, and with a fixed
        # name the old Job has to go first.
        self._job_opts = pulumi.ResourceOptions.merge(self._workload_opts,
                                                      pulumi.ResourceOptions(delete_before_replace=True))
        self._coordinator_workload()
        for master in larry.masters:
            self._master_workload(master)
        for worker in larry.workers:
            self._worker_job(worker)
        self.worker_jobs = [worker.name for worker in larry.workers]
        self._disruption_budget()
        self.coordinator_dns = f"{self._coordinator}.{larry.namespace}.svc.cluster.local"
        self.register_outputs({
            "namespace": self.namespace, "coordinatorDns": self.coordinator_dns, "workerJobs": self.worker_jobs,
        })

    # ---- plan and coordination volume
    def _storage(self) -> list[pulumi.Resource]:
        larry, ns = self._larry, self._larry.namespace
        plan = k8s.core.v1.ConfigMap(f"{self._name}-plan", metadata=kube.metadata(
            self._plan_map, ns, self._labels("plan", larry.id)),
            data=self._args.pods.plan.config_map_data(larry.id), opts=self._child)
        claim = k8s.core.v1.PersistentVolumeClaim(f"{self._name}-coordination", metadata=kube.metadata(
            self._claim, ns, self._labels("coordination", larry.id)), spec={
            "accessModes": ["ReadWriteMany"], "storageClassName": larry.storage_class,
            "resources": {"requests": {"storage": larry.storage}}}, opts=self._child)
        return [plan, claim]

    # ---- identities and permissions
    def _rbac(self, cluster_reader: ClusterReader | None) -> list[pulumi.Resource]:
        larry, ns = self._larry, self._larry.namespace
        labels = self._labels("rbac", larry.id)
        # Only the processes that call the Kubernetes API get an identity, a token and a route
        # to the API server: the clusterRead Larrys' workers. Coordinators never call it (they
        # coordinate through Redis), so they run with no token at all.
        if not larry.cluster_read:
            return []
        if cluster_reader is None:
            raise ValueError(f"{larry.id} has clusterRead: its LarryArgs need the stack's ClusterReader")
        # Workers get an identity, and an API token, only when their Larry reads the cluster.
        account = k8s.core.v1.ServiceAccount(f"{self._name}-worker", metadata=kube.metadata(
            self._worker_sa, ns, labels), opts=self._child)
        # Cluster-scoped, so qualified by namespace and Larry to stay unique in the cluster.
        binding = k8s.rbac.v1.ClusterRoleBinding(
            f"{self._name}-cluster-read", metadata=kube.metadata(f"larry:{ns}:{larry.id}:cluster-read", None, labels),
            role_ref=self._role_ref("ClusterRole", cluster_reader.role_name),
            subjects=[self._subject(self._worker_sa)],
            opts=kube.opts(self, depends_on=[self._namespace, cluster_reader]))
        self._api_egress()
        return [account, binding]

    def _api_egress(self) -> None:
        """The pods holding an API token may reach the API server on the k3s servers, nothing more."""
        k8s.networking.v1.NetworkPolicy(f"{self._name}-kube-api", metadata=kube.metadata(
            f"{self._larry.id}-kube-api", self._larry.namespace, self._labels("network", self._larry.id)), spec={
            "podSelector": {"matchLabels": {contract.LARRY: self._larry.id, contract.APP: contract.WORKER_APP}},
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
                "spec": pods.pod_spec(container, self._plan_map, self._claim,
                                      affinity=kube.node_affinity([larry.node]),
                                      tolerations=CONTROL_PLANE_TOLERATIONS)}}, opts=self._workload_opts)
        k8s.core.v1.Service(f"{self._name}-coordinator", metadata=kube.metadata(self._coordinator, ns, labels), spec={
            "type": "ClusterIP", "selector": selector,
            "ports": [{"name": "http", "port": COORDINATOR_PORT, "targetPort": "http", "protocol": "TCP"}]},
            opts=self._child)
        if self._args.observability.service_monitors:
            service_monitor(f"{self._name}-coordinator", self._coordinator, ns, labels, selector, "http",
                            self._args.observability, self._child)

    # ---- masters
    def _master_workload(self, master: Master) -> None:
        larry, pods, ns = self._larry, self._args.pods, self._larry.namespace
        profile = self._args.master_agents.get(master.name)
        selector = {contract.APP: contract.MASTER_APP, contract.LARRY: larry.id, contract.MASTER: master.name}
        name = f"{larry.id}-master-{master.name}"
        labels = self._labels("master", name, **selector, **({contract.AGENT: profile.name} if profile else {}),
                              name=contract.MASTER_APP)
        command = ["larry", "master", "--plan", PLAN_PATH, "--larry", larry.id, "--master", master.name]
        env = kube.env({envvar.LARRY_ID: larry.id, envvar.MASTER: master.name,
                        envvar.TOKEN_BUDGET: master.personal_tokens})
        if profile:
            command, env = agents.command(command, profile), env + agents.env(profile)
        container = pods.container(
            "master", MASTER_RESOURCES.as_dict(), command=command, env=env + self._shared_env,
            **({"image": profile.image, "mounts": [agents.HOME_MOUNT]} if profile else {}))
        k8s.apps.v1.Deployment(f"{self._name}-master-{master.name}", metadata=kube.metadata(name, ns, labels), spec={
            "replicas": 1, "strategy": {"type": "Recreate"}, "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels, "annotations": {contract.PLAN_DIGEST: pods.plan.digest(larry.id)}},
                "spec": pods.pod_spec(container, self._plan_map, self._claim,
                                      volumes=[agents.HOME_VOLUME] if profile else (),
                                      affinity=kube.node_affinity([larry.node]),
                                      tolerations=CONTROL_PLANE_TOLERATIONS)}}, opts=self._workload_opts)

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
                            restartPolicy="Never", affinity=kube.node_affinity([worker.node]))
        k8s.batch.v1.Job(
            f"{self._name}-{worker.name}",
            metadata=kube.metadata(worker.name, larry.namespace, labels, annotations),
            # No ttlSecondsAfterFinished: a Job deleted by its TTL would be re-created, and re-run,
            # by the next `pulumi up`. Finished Jobs go with `larry cleanup` / `pulumi destroy`.
            # Seed risk 1: Kubernetes restarts a failed worker; its task lease expires and is re-claimed.
            # The worker enforces its own `minutes` (and records a `deadline` failure); the Job's
            # deadline counts from the Job's creation, through image pulls, Redis bootstrap and
            # the waits for the phase and dependencies, so it is the phase's: a backstop only.
            spec={"backoffLimit": WORKER_BACKOFF_LIMIT, "activeDeadlineSeconds": larry.deadline_minutes * 60,
                  "podFailurePolicy": WORKER_FAILURE_POLICY,
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
        return kube.labels(name, instance, component,
                           **{contract.LARRY: self._larry.id, **self._args.pods.run_labels(), **extra})
