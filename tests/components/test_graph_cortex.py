"""The cortex stack builds: seed 004's 16 workers, four per node, six Larrys in one namespace."""
from collections import Counter

from plan.loader import load_plan_document, load_stack
from tests.components.pulumi_graph import CM, JOB, NS, QUOTA, ROOT, SECRET, hostnames

CORTEX_NS = "cortex-workers"


def test_sixteen_workers_four_per_node(cortex):
    workers = [j for j in cortex.of(JOB) if j.metadata["labels"].get("app") == "larry-worker"]
    assert len(workers) == 16
    nodes = Counter(node for j in workers for node in hostnames(j.manifest["spec"]["template"]["spec"]))
    assert nodes == {"k3s-worker01": 4, "k3s-worker02": 4, "k3s-worker03": 4, "k3s-worker04": 4}


def test_shared_namespace_created_once(cortex):
    assert sorted(cortex.named(NS)) == ["catalog-system", "cortex-system", CORTEX_NS]
    assert [r.name for r in cortex.of("larry:index:LarryNamespace")] == [CORTEX_NS]
    assert sorted(cortex.named(SECRET)) == ["catalog-system/redis-auth", "cortex-system/redis-auth",
                                            f"{CORTEX_NS}/redis-auth"]
    assert list(cortex.named(QUOTA)) == [f"{CORTEX_NS}/larry-budget"]
    # Every Larry of the namespace depends on that one LarryNamespace (names are checked unique
    # per kind and namespace by Graph.named, which raises on a collision).
    assert len(cortex.of("larry:index:Larry")) == 6
    for typ in {r.typ for r in cortex.kubernetes()}:
        cortex.named(typ)


def test_quota_covers_all_six_larrys(cortex):
    cfg = load_stack("cortex", ROOT)
    hard = cortex.named(QUOTA)[f"{CORTEX_NS}/larry-budget"].manifest["spec"]["hard"]
    # 6 coordinators + 6 masters + 16 workers = 28 pods, plus 25 % headroom; six claims.
    assert hard["pods"] == "35"
    assert hard["persistentvolumeclaims"] == str(len(cfg.larrys)) == "6"
    assert hard["requests.storage"] == "35Gi"  # 5 + 5 + 10 + 5 + 5 + 5


def test_workers_carry_master_and_type(cortex):
    job = cortex.named(JOB)[f"{CORTEX_NS}/catalog-worker-01"].manifest
    labels, annotations = job["metadata"]["labels"], job["metadata"]["annotations"]
    assert (labels["larry.dev/larry"], labels["larry.dev/master"]) == ("inventory", "inventory-master")
    assert annotations["larry.dev/master"] == "inventory-master"
    assert annotations["larry.dev/worker-type"] == "catalog-worker"
    assert (annotations["larry.dev/tokens"], annotations["larry.dev/minutes"]) == ("8000", "15")
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["LARRY_MASTER"] == "inventory-master"
    assert env["LARRY_REDIS_URL"] == "redis://redis.cortex-system.svc.cluster.local:6379/0"


def test_meta_coordinator_holds_the_orchestration_budget(cortex):
    job = cortex.named(JOB)["cortex-system/larry-converge"].manifest
    assert job["metadata"]["annotations"]["larry.dev/tokens"] == "50000"
    assert job["spec"]["activeDeadlineSeconds"] == 60 * 60
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][:2] == ["larry", "converge"]


def test_the_pods_plan_carries_the_queue_assignment(cortex):
    """What each Larry's pods read (their plan ConfigMap's slice) chooses seed 004's queue."""
    slices = [r.manifest["data"]["plan.yaml"] for r in cortex.of(CM) if "plan.yaml" in r.manifest.get("data", {})]
    assert len(slices) >= 6, "a plan for each Larry"
    assert {load_plan_document(text, "plan.yaml").task_assignment for text in slices} == {"queue"}
