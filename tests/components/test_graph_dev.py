"""The dev stack's resource graph is exactly the 3-Larry plan of seeds 001 and 002."""
import json
from collections import Counter
from dataclasses import replace

import yaml

from plan.loader import load_plan_document, load_plan_documents, load_stack
from tests.components.pulumi_graph import (
    CM,
    DEPLOY,
    JOB,
    LIMITS,
    MOCK_PASSWORD,
    NETPOL,
    NS,
    PASSWORD_TYPE,
    PDB,
    PVC,
    QUOTA,
    RBAC,
    ROOT,
    RULE,
    SECRET,
    SM,
    STS,
    SVC,
    K,
    env_of,
    hostnames,
    walk_strings,
)

# Seed 001 "K3s Cluster Topology" and "Workers": who runs where.
SEED_WORKER_NODES = {
    "cleanup-worker": "k3s-worker01", "consolidation-worker": "k3s-worker01",
    "optimization-worker": "k3s-worker01", "monitoring-worker": "k3s-worker01",
    "scan-worker-01": "k3s-worker02", "scan-worker-02": "k3s-worker02",
    "audit-worker": "k3s-worker02", "remediation-worker": "k3s-worker02",
    "catalog-worker-01": "k3s-worker03", "catalog-worker-02": "k3s-worker03", "classification-worker": "k3s-worker03",
    "code-quality-worker": "k3s-worker04", "test-coverage-worker": "k3s-worker04",
    "documentation-worker": "k3s-worker04", "feature-worker": "k3s-worker04", "review-worker": "k3s-worker04",
}
LARRYS = ("larry-01", "larry-02", "larry-03")


def test_exactly_the_expected_graph(dev):
    assert dev.types() == Counter({
        "pulumi:providers:kubernetes": 1, PASSWORD_TYPE: 1,
        "larry:index:RedisHA": 1, "larry:index:LarryNamespace": 3, "larry:index:Larry": 3,
        "larry:index:MetaCoordinator": 1, "larry:index:Observability": 1, "larry:index:ClusterReader": 1,
        NS: 4, QUOTA: 3, LIMITS: 3, SECRET: 4,
        CM: 8,  # three Larrys' slices of the plan, the meta-coordinator's copy of each, the Redis scripts, the dashboard
        PVC: 4,
        f"{K}core/v1:ServiceAccount": 2,  # the workers of the clusterRead Larrys: nothing else calls the API
        SVC: 6,  # 3 coordinators + Redis headless/server/sentinel
        f"{RBAC}ClusterRole": 1, f"{RBAC}ClusterRoleBinding": 2,
        DEPLOY: 3 + 6, JOB: 17, STS: 2, PDB: 5, SM: 4, RULE: 1,  # 3 coordinators, 6 masters
        NETPOL: 15,  # with larry-03's inventory profile's egress policy
    })


def test_three_larry_namespaces_and_the_redis_one_all_restricted(dev):
    namespaces = dev.named(NS)
    assert set(namespaces) == {*LARRYS, "redis-ha"}
    for ns in namespaces.values():
        assert ns.metadata["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_sixteen_workers_pinned_to_the_seed_nodes(dev):
    jobs = {name.split("/")[1]: job for name, job in dev.named(JOB).items()}
    workers = {name: job for name, job in jobs.items() if job.metadata["labels"].get("app") == "larry-worker"}
    assert {name: hostnames(job.manifest["spec"]["template"]["spec"]) for name, job in workers.items()} \
        == {name: [node] for name, node in SEED_WORKER_NODES.items()}
    assert set(jobs) - set(workers) == {"larry-converge"}


def test_coordinators_pinned_to_the_three_masters(dev):
    deployments = dev.named(DEPLOY)
    assert sorted(k for k in deployments if k.endswith("-coordinator")) == [f"{l}/{l}-coordinator" for l in LARRYS]
    for i, larry in enumerate(LARRYS, 1):
        spec = deployments[f"{larry}/{larry}-coordinator"].manifest["spec"]
        pod = spec["template"]["spec"]
        assert spec["replicas"] == 1
        assert hostnames(pod) == [f"k3s-master0{i}"]
        assert {t["key"] for t in pod["tolerations"]} == {
            "node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"}
        assert all(t["effect"] == "NoSchedule" for t in pod["tolerations"])
        (container,) = pod["containers"]
        assert container["command"] == ["larry", "coordinator", "--plan", "/etc/larry/plan.yaml",
                                        "--larry", larry, "--port", "9100"]
        assert container["ports"] == [{"name": "http", "containerPort": 9100, "protocol": "TCP"}]
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
        # Deployments are awaited by `pulumi up`; only Jobs opt out.
        assert "pulumi.com/skipAwait" not in deployments[f"{larry}/{larry}-coordinator"].metadata.get("annotations", {})


def test_coordination_volumes_10_10_20_gi(dev):
    claims = dev.named(PVC)
    sizes = {name: claim.manifest["spec"]["resources"]["requests"]["storage"] for name, claim in claims.items()
             if name.split("/")[0] in LARRYS}
    assert sizes == {"larry-01/larry-01-coordination": "10Gi", "larry-02/larry-02-coordination": "10Gi",
                     "larry-03/larry-03-coordination": "20Gi"}
    for name in sizes:
        spec = claims[name].manifest["spec"]
        assert spec["accessModes"] == ["ReadWriteMany"] and spec["storageClassName"] == "longhorn"


def test_every_larry_pod_mounts_plan_and_coordination_volume(dev):
    for workload in dev.of(JOB) + dev.of(DEPLOY):
        pod = workload.manifest["spec"]["template"]["spec"]
        mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert mounts["/etc/larry"]["readOnly"] is True
        plan = volumes[mounts["/etc/larry"]["name"]]
        if workload.metadata["name"] == "larry-converge":  # every Larry's slice: the whole plan
            assert [(s["configMap"]["name"], s["configMap"]["items"]) for s in plan["projected"]["sources"]] == [
                (f"larry-converge-plan-{larry}", [{"key": "plan.yaml", "path": f"larrys/{larry}.yaml"}])
                for larry in LARRYS]
        else:
            assert plan["configMap"]["name"] == f"{workload.metadata['namespace']}-plan"
        assert "persistentVolumeClaim" in volumes[mounts["/coordination"]["name"]]


def test_plan_config_maps_carry_each_larry_its_validated_slice(dev):
    cfg = load_stack("dev", ROOT)
    plans = dev.named(CM)
    slices = {}
    for larry in LARRYS:
        data = plans[f"{larry}/{larry}-plan"].manifest["data"]
        assert data["larry-id"] == larry
        assert plans[f"redis-ha/larry-converge-plan-{larry}"].manifest["data"] == data
        loaded = slices[larry] = load_plan_document(data["plan.yaml"], "configmap")
        assert loaded.larrys == (cfg.larry(larry),) and loaded.larry_ids == tuple(LARRYS)
        assert loaded.redis == cfg.redis and loaded.budget == cfg.budget and loaded.nodes == cfg.nodes
    # larry-02's Helm patches wait for larry-03's release discovery: its slice says so, and no more.
    assert [(t.id, t.larry) for t in slices["larry-02"].upstream] == [("discover-helm-releases", "larry-03")]
    assert replace(load_plan_documents({
        larry: plans[f"{larry}/{larry}-plan"].manifest["data"]["plan.yaml"] for larry in LARRYS}), source=cfg.source) == cfg


def test_worker_job_contract(dev):
    job = dev.named(JOB)["larry-03/feature-worker"].manifest
    meta, spec = job["metadata"], job["spec"]
    assert meta["labels"] == {
        "app": "larry-worker", "larry.dev/larry": "larry-03", "larry.dev/worker": "feature-worker",
        "app.kubernetes.io/name": "larry-worker", "app.kubernetes.io/instance": "feature-worker",
        "app.kubernetes.io/component": "worker", "app.kubernetes.io/part-of": "larry",
        "app.kubernetes.io/managed-by": "pulumi"}  # dev workers name no master: no master label
    assert meta["annotations"] == {
        "larry.dev/tokens": "12000", "larry.dev/minutes": "25", "larry.dev/phase-deadline-minutes": "30",
        "larry.dev/execution-window-minutes": "40", "pulumi.com/skipAwait": "true"}
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"]) == (3, 30 * 60)  # the phase deadline
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert spec["podFailurePolicy"]["rules"] == [
        {"action": "FailJob", "onExitCodes": {"containerName": "worker", "operator": "In", "values": [2, 3]}},
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]
    assert spec["template"]["metadata"]["labels"] == meta["labels"]
    (container,) = pod["containers"]
    assert container["command"] == ["larry", "worker", "--plan", "/etc/larry/plan.yaml",
                                    "--larry", "larry-03", "--worker", "feature-worker"]
    assert env_of(container) == {
        "LARRY_ID": "larry-03", "LARRY_WORKER_ID": "feature-worker",
        "LARRY_TASK_IDS": "implement-priority-feature,document-priority-feature",
        "LARRY_TOKEN_BUDGET": "12000", "LARRY_DEADLINE_MINUTES": "25",
        "LARRY_REDIS_SENTINELS": "redis-cluster-sentinel.redis-ha.svc.cluster.local:26379",
        "LARRY_REDIS_MASTER_NAME": "larry",
        "LARRY_REDIS_URL": "redis://redis-cluster.redis-ha.svc.cluster.local:6379/0",
        "LARRY_REDIS_PASSWORD": {"secretKeyRef": {"name": "redis-auth", "key": "password"}},
        "LARRY_REDIS_SENTINEL_PASSWORD": {"secretKeyRef": {"name": "redis-auth", "key": "password"}},
        "LARRY_COORDINATION_DIR": "/coordination", "LARRY_RESULTS_DIR": "/coordination/results"}
    assert container["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}


def test_workers_get_an_api_token_only_where_their_larry_reads_the_cluster(dev):
    for job in dev.of(JOB):
        pod = job.manifest["spec"]["template"]["spec"]
        larry = job.metadata["labels"].get("larry.dev/larry")
        assert pod["automountServiceAccountToken"] is (larry in ("larry-02", "larry-03"))


def test_rbac_is_least_privilege(dev):
    # Coordinators never call the Kubernetes API: no Role, no binding, no token.
    assert dev.of(f"{RBAC}Role") == [] and dev.of(f"{RBAC}RoleBinding") == []
    for deployment in dev.of(DEPLOY):
        pod = deployment.manifest["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False and "serviceAccountName" not in pod
    # One read-only ClusterRole for the stack, bound only by the clusterRead Larrys (02 and 03).
    (role,) = dev.named(f"{RBAC}ClusterRole").values()
    assert role.metadata["name"] == "larry:dev:cluster-read"
    for rule in role.manifest["rules"]:
        assert set(rule["verbs"]) <= {"get", "list", "watch"}
        assert "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        assert "secrets" not in rule["resources"]
    bindings = dev.named(f"{RBAC}ClusterRoleBinding")
    assert sorted(bindings) == ["larry:larry-02:larry-02:cluster-read", "larry:larry-03:larry-03:cluster-read"]
    for larry in ("larry-02", "larry-03"):
        binding = bindings[f"larry:{larry}:{larry}:cluster-read"].manifest
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                      "name": "larry:dev:cluster-read"}
        assert {(s["name"], s["namespace"]) for s in binding["subjects"]} == {(f"{larry}-worker", larry)}


def test_service_and_service_monitor_per_larry(dev):
    monitors = dev.named(SM)
    services = dev.named(SVC)
    for larry in LARRYS:
        monitor = monitors[f"{larry}/{larry}-coordinator"].manifest["spec"]
        service = services[f"{larry}/{larry}-coordinator"].manifest
        assert service["spec"]["type"] == "ClusterIP"
        assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert monitor["namespaceSelector"] == {"matchNames": [larry]}
        assert monitor["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}


def test_quota_derived_from_the_planned_pods(dev):
    # larry-03: coordinator 4 CPU / 8Gi (limits 8 / 16Gi) + 3 masters at 500m / 1Gi (1 / 2Gi) +
    # 8 workers at 1 CPU / 2Gi (2 / 4Gi), plus 25 % headroom; one 20Gi claim.
    hard = dev.named(QUOTA)["larry-03/larry-budget"].manifest["spec"]["hard"]
    assert hard == {"requests.cpu": "16875m", "requests.memory": "34560Mi", "limits.cpu": "33750m",
                    "limits.memory": "69120Mi", "pods": "15", "persistentvolumeclaims": "1", "requests.storage": "20Gi",
                    "services.loadbalancers": "0", "services.nodeports": "0"}
    (limits,) = dev.named(LIMITS)["larry-03/larry-budget"].manifest["spec"]["limits"]
    assert limits["max"] == {"cpu": "8", "memory": "16Gi"}
    assert limits["defaultRequest"] == {"cpu": "500m", "memory": "1Gi"}  # the smallest pod: a master's


def test_redis_ha(dev):
    (server,) = [s for s in dev.of(STS) if s.metadata["name"] == "redis-cluster"]
    (sentinel,) = [s for s in dev.of(STS) if s.metadata["name"] == "redis-cluster-sentinel"]
    for sts, replicas in ((server, 3), (sentinel, 3)):
        spec = sts.manifest["spec"]
        assert spec["replicas"] == replicas
        (term,) = spec["template"]["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert term["topologyKey"] == "kubernetes.io/hostname"
        assert term["labelSelector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    sentinel_env = env_of(sentinel.manifest["spec"]["template"]["spec"]["containers"][0])
    assert (sentinel_env["QUORUM"], sentinel_env["DOWN_AFTER_MS"], sentinel_env["FAILOVER_TIMEOUT_MS"]) == (
        "2", "5000", "60000")
    assert {c["name"] for c in server.manifest["spec"]["template"]["spec"]["containers"]} == {"redis", "exporter"}
    conf = dev.named(CM)["redis-ha/redis-cluster-scripts"].manifest["data"]["redis.conf"].splitlines()
    for line in ("appendonly yes", "min-replicas-to-write 1", 'rename-command FLUSHALL ""',
                 'rename-command FLUSHDB ""', 'rename-command KEYS ""'):
        assert line in conf
    services = dev.named(SVC)
    assert [p["port"] for p in services["redis-ha/redis-cluster"].manifest["spec"]["ports"]] == [6379, 9121]
    assert [p["port"] for p in services["redis-ha/redis-cluster-sentinel"].manifest["spec"]["ports"]] == [26379]
    budgets = dev.named(PDB)
    assert budgets["redis-ha/redis-cluster-server"].manifest["spec"]["maxUnavailable"] == 1
    assert budgets["redis-ha/redis-cluster-sentinel"].manifest["spec"]["minAvailable"] == 2
    assert "redis-ha/redis-cluster" in dev.named(SM)


def test_redis_admits_only_larry_namespaces_and_the_scraper(dev):
    policy = dev.named(NETPOL)["redis-ha/redis-cluster-clients"].manifest["spec"]
    clients, scrape = policy["ingress"]
    (names,) = clients["from"][0]["namespaceSelector"]["matchExpressions"]
    assert names["values"] == list(LARRYS)
    assert clients["from"][1] == {"podSelector": {}}  # the hub's own pods and the meta-coordinator
    assert {p["port"] for p in clients["ports"]} == {6379, 26379}
    assert scrape["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"] == ["monitoring"]
    assert [p["port"] for p in scrape["ports"]] == [9121]
    for ns in (*LARRYS, "redis-ha"):
        deny = dev.named(NETPOL)[f"{ns}/default-deny"].manifest["spec"]
        assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_password_never_in_plain_text(dev):
    seen_in_secrets = []
    for resource in dev.resources:
        for path, text, secret in walk_strings(resource.inputs):
            if MOCK_PASSWORD in text:
                assert secret, f"{resource.typ} {resource.name}{path} holds the password in plain text"
                seen_in_secrets.append((resource.typ, resource.metadata.get("namespace")))
    # The scan can see the value: it is there, marked secret, in one Secret per namespace.
    assert sorted(seen_in_secrets) == sorted((SECRET, ns) for ns in (*LARRYS, "redis-ha"))
    assert dev.secret_outputs == {"redisPassword"} and dev.outputs["redisPassword"] == MOCK_PASSWORD
    for name, value in dev.outputs.items():
        if name != "redisPassword":
            assert MOCK_PASSWORD not in yaml.safe_dump(value)


def test_stack_outputs(dev):
    cfg = load_stack("dev", ROOT)
    larrys = dev.outputs["larrys"]
    assert set(larrys) == set(LARRYS)
    for larry in cfg.larrys:
        out = larrys[larry.id]
        assert out["namespace"] == larry.namespace
        assert out["coordinatorDns"] == f"{larry.id}-coordinator.{larry.namespace}.svc.cluster.local"
        assert out["workerJobs"] == [w.name for w in larry.workers]
        assert (out["budget"]["tokenBudget"], out["budget"]["allocatedTokens"]) == (
            larry.token_budget, larry.allocated_tokens)
    assert dev.outputs["budget"]["allocatedTokens"] == cfg.allocated_tokens == 478_000
    assert dev.outputs["redis"]["host"] == "redis-cluster.redis-ha.svc.cluster.local"
    assert dev.outputs["redis"]["sentinelPort"] == 26379



def test_dashboard_and_alert_rules(dev):
    (dashboard,) = [c for c in dev.of(CM) if c.metadata["name"] == "larry-dashboard"]
    assert dashboard.metadata["labels"]["grafana_dashboard"] == "1"
    panels = json.loads(dashboard.manifest["data"]["larry.json"])["panels"]
    assert [p["type"] for p in panels] == ["gauge", "table", "timeseries", "timeseries", "state-timeline"]
    exprs = " ".join(p["targets"][0]["expr"] for p in panels)
    for metric in ("larry_phase_progress", "larry_workers_active", "redis_commands_processed_total",
                   "larry_tokens_used", "larry_tasks_completed"):
        assert metric in exprs
    assert "cortex-orchestration-dashboard" not in {c.metadata["name"] for c in dev.of(CM)}, "seed 004's: cortex only"
    (rule,) = dev.of(RULE)
    alerts, recording = rule.manifest["spec"]["groups"]
    rules = {r["alert"]: r for r in alerts["rules"]}
    assert set(rules) == {"TokenBudgetExceeded", "HighTokenUsage", "WorkerPodEvicted", "MasterTaskFailed",
                          "SlowWorkerExecution", "WorkerJobNearDeadline", "RedisCoordinationSlow"}
    assert {r["record"] for r in recording["rules"]} == {"cortex_catalog_discovery_rate", "cortex:token_budget_used:ratio"}
    assert "0.9 * max by (larry_id) (larry_tokens_limit)" in rules["HighTokenUsage"]["expr"]
    assert 'namespace=~"larry-01|larry-02|larry-03"' in rules["WorkerPodEvicted"]["expr"]
    assert rules["TokenBudgetExceeded"]["labels"]["severity"] == "critical"
