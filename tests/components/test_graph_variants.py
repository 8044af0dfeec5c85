"""Config switches change the graph as documented: provider mode, monitoring flags, exporter."""
from plan.labels import EXECUTION
from tests.components.pulumi_graph import CM, DEPLOY, JOB, NETPOL, RULE, SM, STS, run_program, stack_values

PROVIDER = "pulumi:providers:kubernetes"


def test_dev_renders_manifests_per_stack(dev):
    (provider,) = dev.of(PROVIDER)
    assert provider.inputs["renderYamlToDirectory"] == "rendered/dev"
    assert "kubeconfig" not in provider.inputs
    # Every Kubernetes object goes through that provider (children inherit it from their component).
    assert all(r.inputs.get("kind") for r in dev.kubernetes())


def test_a_cluster_context_replaces_render_mode():
    values = stack_values("dev")
    values["larry:cluster"] = {"kubeconfig": "~/.kube/k3s.yaml", "context": "k3s"}
    graph = run_program("dev", values)
    (provider,) = graph.of(PROVIDER)
    assert (provider.inputs["kubeconfig"], provider.inputs["context"]) == ("~/.kube/k3s.yaml", "k3s")
    assert "renderYamlToDirectory" not in provider.inputs
    # Where pulumi deploys is no business of the pods: no plan ConfigMap carries it.
    plans = [cm.manifest["data"]["plan.yaml"] for cm in graph.of(CM) if "plan.yaml" in cm.manifest.get("data", {})]
    assert plans and not any("k3s.yaml" in plan or "larry:cluster" in plan for plan in plans)


def test_monitoring_objects_follow_their_flags():
    values = stack_values("dev")
    values["larry:observability"] = {"serviceMonitors": False, "grafanaDashboard": False}
    values["larry:redis"]["exporter"] = False
    graph = run_program("dev", values)
    assert not graph.of(SM) and not graph.of(RULE)
    assert "larry-dashboard" not in {c.metadata["name"] for c in graph.of(CM)}
    server = next(s for s in graph.of(STS) if s.metadata["name"] == "redis-cluster")
    assert [c["name"] for c in server.manifest["spec"]["template"]["spec"]["containers"]] == ["redis"]


def test_dashboard_alone_needs_no_prometheus_operator():
    values = stack_values("dev")
    values["larry:observability"] = {"serviceMonitors": False, "grafanaDashboard": True}
    graph = run_program("dev", values)
    assert not graph.of(SM) and not graph.of(RULE)
    assert "larry-dashboard" in {c.metadata["name"] for c in graph.of(CM)}


def test_prometheus_finds_the_monitors_and_may_scrape_from_its_own_namespace():
    values = stack_values("cortex")
    values["larry:observability"] = {"prometheusNamespace": "observability",
                                     "prometheusLabels": {"release": "kube-prometheus-stack"}}
    graph = run_program("cortex", values)
    monitors = graph.of(SM) + graph.of(RULE)
    assert len(graph.of(SM)) >= 3 and len(graph.of(RULE)) == 2  # the stack's alerts and the catalog's
    for monitor in monitors:
        assert monitor.metadata["labels"]["release"] == "kube-prometheus-stack", monitor.name
    selectors = [str(peer["namespaceSelector"]) for policy in graph.of(NETPOL)
                 for rule in policy.manifest["spec"].get("ingress", []) for peer in rule["from"]
                 if "namespaceSelector" in peer]
    # The coordinators', the Redis exporter's and the catalog's scrape rules; none still names
    # the default namespace.
    assert sum("'observability'" in s for s in selectors) >= 3
    assert not any("'monitoring'" in s for s in selectors)


def test_every_pod_pulls_with_the_stacks_pull_secrets():
    values = stack_values("cortex")
    values["larry:runtimeImage"] = "registry.example.com/larry-runtime@sha256:" + "ab" * 32
    values["larry:imagePullSecrets"] = ["regcred"]
    graph = run_program("cortex", values)
    workloads = graph.of(JOB) + graph.of(DEPLOY) + graph.of(STS)
    assert len(workloads) > 20
    for workload in workloads:
        pod = workload.manifest["spec"]["template"]["spec"]
        assert pod["imagePullSecrets"] == [{"name": "regcred"}], workload.name
    runtime = [c["image"] for w in graph.of(JOB) for c in w.manifest["spec"]["template"]["spec"]["containers"]]
    assert set(runtime) == {values["larry:runtimeImage"]}


def test_no_pull_secrets_unless_given(cortex):
    for workload in cortex.of(JOB) + cortex.of(DEPLOY) + cortex.of(STS):
        assert "imagePullSecrets" not in workload.manifest["spec"]["template"]["spec"], workload.name


def test_a_run_id_puts_every_runtime_process_of_the_run_on_keys_of_its_own():
    values = stack_values("dev")
    values["larry:runId"] = "run-2"
    graph = run_program("dev", values)
    runtime = [c for w in graph.of(JOB) + graph.of(DEPLOY) for c in w.manifest["spec"]["template"]["spec"]["containers"]
               if c["command"][0] == "larry"]
    assert len(runtime) >= 16 + 3
    for container in runtime:
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["LARRY_KEY_PREFIX"] == "run-2:", container["name"]
    # seed 004's cortex.execution: every pod of the run carries the run id; the hub's (Redis and
    # Sentinel, which outlive runs) do not.
    for workload in graph.of(JOB) + graph.of(DEPLOY):
        assert workload.manifest["spec"]["template"]["metadata"]["labels"][EXECUTION] == "run-2"
    for hub in graph.of(STS):
        assert EXECUTION not in hub.manifest["spec"]["template"]["metadata"]["labels"]


def test_without_a_run_id_the_keys_have_no_prefix(dev):
    for workload in dev.of(JOB) + dev.of(DEPLOY):
        assert EXECUTION not in workload.manifest["spec"]["template"]["metadata"]["labels"]
        for container in workload.manifest["spec"]["template"]["spec"]["containers"]:
            assert "LARRY_KEY_PREFIX" not in {e["name"] for e in container.get("env", [])}
