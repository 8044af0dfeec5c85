"""Safety: Redis requires a password from a Secret and is fenced by a NetworkPolicy; no
container is privileged or may run as root; ClusterRoles only read; images are pinned; no
NetworkPolicy (an agent profile's above all) opens egress to everything, and no container gets
a credential as a literal value.

Guaranteed: what the rendered objects say is checked, following the scripts and config files
a Redis container's command names through the ConfigMaps the stack mounts. Not guaranteed:
what an image does at run time (an entrypoint may ignore its arguments), nor a NetworkPolicy
being enforced, which takes a CNI that implements them; a credential is recognised by its
variable's name only (``plan.model.looks_like_secret``).
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from pulumi_policy import ReportViolation
from pulumi_policy.policy import PolicyResource

from plan.model import StackConfig, looks_like_secret
from policies import kube
from policies.facts import CannotEvaluate, container_name, containers, describe, evaluating, whole_number, workloads
from policies.rule import ADVISORY, MANDATORY, Setting, resource_rule, stack_rule


def _is_redis(container: Mapping[str, Any]) -> bool:
    return kube.image_repository(str(container.get("image") or "")) == "redis"


# "requirepass" and its value: a variable ("$VAR", "${VAR}", "$(VAR)" for Kubernetes
# expansion), a printf placeholder filled from one, or else a password written out literally.
_REQUIREPASS = re.compile(r"requirepass[\s=]+[\"']?(?:\$[({]?(\w+)|(%s))?")
_PATH = re.compile(r"(?<![\w$.])/[\w.-]+(?:/[\w.-]+)+")


@stack_rule("redis-password",
            "Every container running the redis image (servers and sentinels) requires a password taken "
            "from a Secret", MANDATORY, needs_plan=False)
def redis_password(resources, _plan, report: ReportViolation, _settings) -> None:
    """``requirepass`` must appear in the container's command or args, or in a script or config
    file they name that a ConfigMap of the stack mounts, with its value from a Secret."""
    files = _config_map_files(resources, report)
    for resource, subject in workloads(resources):
        with evaluating(report, subject, resource.urn):
            spec = kube.pod_spec(resource.resource_type, resource.props)
            for container in kube.containers(spec):
                if _is_redis(container):
                    where = f"{subject}, container {container_name(container)}"
                    with evaluating(report, where, resource.urn):
                        _check_requirepass(where, container, _startup_texts(
                            container, spec, files, kube.namespace(resource.props)), report, resource.urn)


def _config_map_files(resources: list[PolicyResource], report: ReportViolation) -> dict[tuple[str, str], Any]:
    """Each ConfigMap's data by (namespace, name): where a pod's mounted scripts come from."""
    files = {}
    for resource in resources:
        if resource.resource_type == kube.CONFIG_MAP:
            with evaluating(report, describe(resource.resource_type, resource.props, resource.name), resource.urn):
                files[(kube.namespace(resource.props), kube.name(resource.props))] = kube.mapping(
                    resource.props.get("data"))
    return files


def _startup_texts(container: Mapping[str, Any], spec: Mapping[str, Any], files: Mapping[tuple[str, str], Any],
                   namespace: str) -> dict[str, str]:
    """The command line, and the text of every file it (transitively) names that a ConfigMap in
    the stack provides through the container's mounts, by path."""
    line = " ".join(str(part) for key in ("command", "args") for part in kube.items(container.get(key)))
    texts, pending = {"its command and args": line}, _PATH.findall(line)
    volumes = {v.get("name"): v for v in map(kube.mapping, kube.items(spec.get("volumes")))}
    mounts = sorted(map(kube.mapping, kube.items(container.get("volumeMounts"))),
                    key=lambda m: -len(str(m.get("mountPath", ""))))  # the deepest mount serves a path
    while pending:
        path = pending.pop()
        if path in texts:
            continue
        mount = next((m for m in mounts if path.startswith(str(m.get("mountPath", "")).rstrip("/") + "/")), None)
        source = kube.dig(volumes.get(mount.get("name")) if mount else None, "configMap")
        if source is None:
            continue  # not from a ConfigMap (emptyDir, image): nothing the plan shows
        key = path[len(str(mount.get("mountPath")).rstrip("/")) + 1:]
        key = next((i.get("key") for i in map(kube.mapping, kube.items(source.get("items")))
                    if i.get("path") == key), key)
        data = files.get((namespace, source.get("name")))
        if data is None:
            raise CannotEvaluate(f"{path} comes from ConfigMap {source.get('name')}, which is not in the stack")
        text = data.get(key)
        if text is not None:
            texts[path] = str(text)
            pending += _PATH.findall(str(text))
    return texts


def _check_requirepass(where: str, container: Mapping[str, Any], texts: Mapping[str, str],
                       report: ReportViolation, urn: str) -> None:
    found = [(path, match) for path, text in texts.items() for match in _REQUIREPASS.finditer(text)]
    if not found:
        report(f"{where}: starts Redis without requirepass in {', '.join(texts)}", urn)
    for path, match in found:
        variable, placeholder = match.groups()
        if variable is None and placeholder is None:
            report(f"{where}: requirepass in {path} is not followed by a variable set from a Secret "
                   "(a literal password would sit in the manifest)", urn)
        elif variable and not _from_secret(container, variable):
            report(f"{where}: requirepass in {path} uses ${variable}, which is not set from a Secret", urn)
        elif not variable and not _from_secret(container, None):
            report(f"{where}: requirepass in {path} is filled from a printf placeholder, and the container "
                   "has no variable set from a Secret", urn)


def _from_secret(container: Mapping[str, Any], variable: str | None) -> bool:
    """``variable`` (any variable when None) is set from a Secret."""
    if any(kube.dig(source, "secretRef") is not None for source in kube.items(container.get("envFrom"))):
        return True
    return any(kube.dig(env, "valueFrom", "secretKeyRef") is not None
               for env in map(kube.mapping, kube.items(container.get("env")))
               if variable is None or env.get("name") == variable)


def _open_ingress(policy: Mapping[str, Any]) -> list[str]:
    """Why a NetworkPolicy admits traffic from anywhere: a rule without sources, or a source
    that is every namespace or every address."""
    reasons = []
    for i, rule in enumerate(kube.items(kube.dig(policy, "spec", "ingress"))):
        sources = kube.items(kube.mapping(rule).get("from"))
        if not sources:
            reasons.append(f"ingress rule {i} has no 'from'")
        for source in map(kube.mapping, sources):
            everyone = source.get("namespaceSelector") == {} and source.get("podSelector") in (None, {})
            if everyone or kube.dig(source, "ipBlock", "cidr") in ("0.0.0.0/0", "::/0"):
                reasons.append(f"ingress rule {i} admits every namespace or address")
    return reasons


def _fences_ingress(policy: Mapping[str, Any]) -> bool:
    types = kube.items(kube.dig(policy, "spec", "policyTypes"))
    return not types or "Ingress" in types  # without policyTypes, Ingress always applies


@stack_rule("redis-network-policy",
            "Every Redis workload is selected by a NetworkPolicy that restricts ingress, and none "
            "selecting it admits traffic from anywhere", MANDATORY)
def redis_network_policy(resources, plan: StackConfig, report: ReportViolation, _settings) -> None:
    network_policies = []
    for resource in resources:
        if resource.resource_type == kube.NETWORK_POLICY:
            subject = describe(resource.resource_type, resource.props, resource.name)
            with evaluating(report, subject, resource.urn):
                network_policies.append((subject, kube.namespace(resource.props), resource.props))
    found = False
    for resource, subject in workloads(resources):
        with evaluating(report, subject, resource.urn):
            template = kube.pod_template(resource.resource_type, resource.props)
            if not any(_is_redis(c) for c in kube.containers(kube.mapping(template.get("spec")))):
                continue
            found = True
            space, pod_labels = kube.namespace(resource.props), kube.labels(template)
            selecting = [(name, props) for name, policy_space, props in network_policies
                         if policy_space == space and _fences_ingress(props)
                         and kube.selector_matches(kube.dig(props, "spec", "podSelector"), pod_labels)]
            if not selecting:
                report(f"{subject}: no NetworkPolicy in namespace {space} selects its pods "
                       f"({', '.join(f'{k}={v}' for k, v in sorted(pod_labels.items()))}) for ingress", resource.urn)
            for name, props in selecting:
                for reason in _open_ingress(props):
                    report(f"{subject}: {name} {reason}", resource.urn)
    if not found:
        report(f"cannot evaluate: no workload runs the redis image, though the plan deploys Redis "
               f"in namespace {plan.redis.namespace}", None)


_ESCALATING_CAPABILITIES = {"ALL", "SYS_ADMIN"}


@resource_rule("container-security", "No container is privileged, may run as root, or may escalate privileges",
               MANDATORY, kube.WORKLOAD_TYPES)
def container_security(args, report: ReportViolation, subject: str, _settings) -> None:
    pod = kube.mapping(kube.pod_spec(args.resource_type, args.props).get("securityContext"))
    for container in containers(args):
        context = kube.mapping(container.get("securityContext"))
        # A container's own setting wins over the pod's.
        user = next((v for v in (context.get("runAsUser"), pod.get("runAsUser")) if v is not None), None)
        non_root = next((v for v in (context.get("runAsNonRoot"), pod.get("runAsNonRoot")) if v is not None), None)
        problems = []
        if context.get("privileged") is True:
            problems.append("privileged: true")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append("allowPrivilegeEscalation is not false (Kubernetes defaults it to true)")
        added = {str(c) for c in kube.items(kube.dig(context, "capabilities", "add"))} & _ESCALATING_CAPABILITIES
        if added:
            problems.append(f"adds capabilities {', '.join(sorted(added))}")
        if user is not None and whole_number(user, "runAsUser") == 0:
            problems.append("runs as root (runAsUser 0)")
        elif user is None and non_root is not True:
            problems.append("may run as root (neither runAsNonRoot: true nor a non-zero runAsUser)")
        if problems:
            report(f"{subject}, container {container_name(container)}: {'; '.join(problems)}", None)


@resource_rule("clusterrole-read-only",
               "ClusterRoles only read: no write verb, no access to Secrets, no wildcard resources",
               MANDATORY, [kube.CLUSTER_ROLE],
               [Setting("allowedVerbs", ["get", "list", "watch"], {"type": "array", "items": {"type": "string"},
                        "description": "Verbs a ClusterRole may grant"}),
                Setting("forbiddenResources", ["secrets", "*"], {"type": "array", "items": {"type": "string"},
                        "description": "Resources a ClusterRole may not name"})])
def clusterrole_read_only(args, report: ReportViolation, subject: str, settings) -> None:
    if args.props.get("aggregationRule") is not None:
        raise CannotEvaluate("it aggregates other ClusterRoles, whose rules this policy does not see")
    allowed, forbidden = set(settings["allowedVerbs"]), set(settings["forbiddenResources"])
    for i, rule in enumerate(map(kube.mapping, kube.items(args.props.get("rules")))):
        verbs = [str(v) for v in kube.items(rule.get("verbs"))]
        targets = [str(r) for r in kube.items(rule.get("resources"))] or [
            str(u) for u in kube.items(rule.get("nonResourceURLs"))]
        writes = [v for v in verbs if v not in allowed]
        if writes:
            report(f"{subject}: rule {i} grants {', '.join(writes)} on {', '.join(targets)} "
                   f"(allowed verbs: {', '.join(sorted(allowed))})", None)
        named = [r for r in targets if r in forbidden]
        if named:
            report(f"{subject}: rule {i} grants access to {', '.join(named)}", None)


@resource_rule("image-tag", "Every container image names a tag other than latest (or a digest)",
               ADVISORY, kube.WORKLOAD_TYPES,
               [Setting("forbiddenTags", ["latest"], {"type": "array", "items": {"type": "string"},
                        "description": "Image tags that do not pin a version"})])
def image_tag(args, report: ReportViolation, subject: str, settings) -> None:
    forbidden = set(settings["forbiddenTags"])
    for container in containers(args):
        image = str(container.get("image") or "")
        tag = kube.image_tag(image)
        if tag is None or tag in forbidden:
            report(f"{subject}, container {container_name(container)}: image {image or '(none)'} "
                   f"is {'untagged' if tag is None else 'tagged ' + tag}, so it is not pinned", None)


def _wide_open(rule: Mapping[str, Any], minimum: Mapping[int, int]) -> list[str]:
    """Why one egress rule opens a pod to everything: no destination at all, every address,
    or every port of a network wider than ``minimum`` (shortest prefix allowed, by IP version)."""
    peers = kube.items(rule.get("to"))
    if not peers:
        return ["has no 'to', so it admits every destination"]
    reasons = []
    for peer in map(kube.mapping, peers):
        cidr = kube.dig(peer, "ipBlock", "cidr")
        if cidr is None:
            continue
        try:
            network = ipaddress.ip_network(str(cidr), strict=False)
        except ValueError:
            raise CannotEvaluate(f"ipBlock cidr {cidr!r} is not a network") from None
        if network.prefixlen == 0:
            reasons.append(f"admits every address ({cidr})")
        elif network.prefixlen < minimum[network.version] and not kube.items(rule.get("ports")):
            reasons.append(f"admits every port of {cidr}, wider than /{minimum[network.version]}")
    return reasons


@resource_rule("egress-open",
               "No NetworkPolicy, an agent profile's above all, admits egress to every address, nor to every "
               "port of a wide network: an agent holds an API key and runs commands a model chose",
               MANDATORY, [kube.NETWORK_POLICY],
               [Setting("ipv4MinPrefix", 16, {"type": "integer", "minimum": 1, "maximum": 32, "description":
                        "The shortest IPv4 prefix an egress rule may admit without naming ports"}),
                Setting("ipv6MinPrefix", 48, {"type": "integer", "minimum": 1, "maximum": 128, "description":
                        "The shortest IPv6 prefix an egress rule may admit without naming ports"})])
def egress_open(args, report: ReportViolation, subject: str, settings) -> None:
    minimum = {4: settings["ipv4MinPrefix"], 6: settings["ipv6MinPrefix"]}
    for i, rule in enumerate(map(kube.mapping, kube.items(kube.dig(args.props, "spec", "egress")))):
        for reason in _wide_open(rule, minimum):
            report(f"{subject}: egress rule {i} {reason}", None)


@resource_rule("secret-env-from-secret",
               "A container variable named like a credential (*_API_KEY, *_TOKEN, *_PASSWORD, ...) is set from a "
               "Secret, never as a literal value", MANDATORY, kube.WORKLOAD_TYPES)
def secret_env_from_secret(args, report: ReportViolation, subject: str, _settings) -> None:
    """The plan loader refuses such a value in an agent profile; this covers every container
    of the stack, however it was rendered. The value is never quoted."""
    for container in containers(args):
        for env in map(kube.mapping, kube.items(container.get("env"))):
            name = str(env.get("name") or "")
            if looks_like_secret(name) and env.get("value") is not None:
                report(f"{subject}, container {container_name(container)}: {name} has a literal value "
                       "(not shown); a credential comes from a Secret (valueFrom.secretKeyRef)", None)


RULES = (redis_password, redis_network_policy, container_security, clusterrole_read_only, image_tag, egress_open,
         secret_env_from_secret)
