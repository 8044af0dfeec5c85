#!/usr/bin/env bash
# scripts/engine/smoke.sh — end-to-end check that the engine from scripts/engine.sh works:
# a throwaway Python Pulumi project in a temp dir (runtime virtualenv = LARRY_VENV, default
# <repo>/.venv) with a kubernetes ConfigMap on a render-to-directory Provider (no cluster,
# no kubeconfig) and, when the random plugin is installed, a random.RandomPassword. It runs
# login, stack init, preview, up, checks the rendered YAML, previews with an advisory and
# with a mandatory pulumi-policy pack, then destroys. Ends with "N passed, N failed".
#
# Run `scripts/engine.sh ensure` first. Set LARRY_SMOKE_KEEP=1 to keep the temp dir.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${LARRY_VENV:-$ROOT/.venv}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/larry-engine-smoke.XXXXXX")"
[[ -n "${LARRY_SMOKE_KEEP:-}" ]] || trap 'rm -rf "$WORK"' EXIT

# Engine environment, with a private state backend and passphrase for this check.
unset PULUMI_BACKEND_URL PULUMI_CONFIG_PASSPHRASE_FILE
eval "$("$ROOT/scripts/engine.sh" env)"
export PULUMI_BACKEND_URL="file://$WORK/state" PULUMI_CONFIG_PASSPHRASE=smoke
# A kubeconfig (KUBECONFIG or ~/.kube/config) becomes the provider's `kubeconfig` input,
# which render mode rejects ("kubeconfig" arg is not compatible with "renderYamlToDirectory").
unset KUBECONFIG

passed=0 failed=0
ok() { passed=$((passed + 1)); printf 'ok   %s\n' "$1"; }
bad() { failed=$((failed + 1)); printf 'FAIL %s\n' "$1"; [[ -f "$WORK/last.log" ]] && sed 's/^/     | /' "$WORK/last.log" | tail -25; }
run() { # name expect(0|nonzero) cmd...
  local name="$1" expect="$2"; shift 2
  local rc=0
  "$@" >"$WORK/last.log" 2>&1 || rc=$?
  if [[ "$expect" == 0 && $rc == 0 ]] || [[ "$expect" != 0 && $rc != 0 ]]; then ok "$name"; else bad "$name (exit $rc)"; fi
}

random_version="$("$VENV/bin/python" -c '
import importlib.metadata as md, json
try:
    for f in md.distribution("pulumi_random").files or []:
        if f.name == "pulumi-plugin.json": print(json.loads(f.read_text())["version"])
except md.PackageNotFoundError: pass')"
with_random=0
if [[ -n "$random_version" && -x "$PULUMI_HOME/plugins/resource-random-v$random_version/pulumi-resource-random" ]]; then
  with_random=1
else
  printf 'skip random.RandomPassword: plugin random %s not installed in %s\n' "${random_version:-(no wheel)}" "$PULUMI_HOME"
fi

mkdir -p "$WORK/state" "$WORK/proj" "$WORK/pack-advisory" "$WORK/pack-mandatory"
cat >"$WORK/proj/Pulumi.yaml" <<EOF
name: engine-smoke
runtime:
  name: python
  options:
    virtualenv: $VENV
EOF
cat >"$WORK/proj/__main__.py" <<EOF
import pulumi
import pulumi_kubernetes as k8s

render = k8s.Provider("render", render_yaml_to_directory="$WORK/rendered")
cm = k8s.core.v1.ConfigMap(
    "smoke",
    metadata={"name": "engine-smoke", "namespace": "default"},
    data={"hello": "world"},
    opts=pulumi.ResourceOptions(provider=render),
)
pulumi.export("configmap", cm.metadata["name"])
if $with_random:
    import pulumi_random as random
    pw = random.RandomPassword("pw", length=24, special=False)
    pulumi.export("password_length", pw.result.apply(len))
EOF
for level in advisory mandatory; do
  cat >"$WORK/pack-$level/PulumiPolicy.yaml" <<EOF
description: engine smoke pack ($level)
runtime:
  name: python
  options:
    virtualenv: $VENV
EOF
  cat >"$WORK/pack-$level/__main__.py" <<EOF
from pulumi_policy import EnforcementLevel, PolicyPack, ResourceValidationPolicy

def no_smoke_configmap(args, report_violation):
    if args.resource_type == "kubernetes:core/v1:ConfigMap" and args.props["metadata"]["name"] == "engine-smoke":
        report_violation("engine-smoke ConfigMap seen by the policy pack")

PolicyPack(
    name="smoke-$level",
    enforcement_level=EnforcementLevel.${level^^},
    policies=[ResourceValidationPolicy(name="no-smoke-configmap", description="flags the smoke ConfigMap",
                                       validate=no_smoke_configmap)],
)
EOF
done

cd "$WORK/proj"
run "pulumi version is $(pulumi version)" 0 pulumi version
run "pulumi login file://$WORK/state" 0 pulumi login "file://$WORK/state"
run "pulumi stack init smoke" 0 pulumi stack init smoke
run "pulumi preview" 0 pulumi preview --non-interactive
run "pulumi up --yes" 0 pulumi up --yes --non-interactive --skip-preview
if grep -qs "name: engine-smoke" "$WORK"/rendered/1-manifest/*configmap*engine-smoke*.yaml; then
  ok "ConfigMap YAML rendered to $WORK/rendered"
else
  bad "ConfigMap YAML rendered (found: $(find "$WORK/rendered" -type f 2>/dev/null | tr '\n' ' '))"
fi
if (( with_random )); then
  run "RandomPassword output" 0 bash -c '[[ "$(pulumi stack output password_length)" == 24 ]]'
fi
run "preview --policy-pack (advisory violation reported, preview succeeds)" 0 \
  bash -c 'out="$(pulumi preview --non-interactive --policy-pack "$1" 2>&1)" && grep -q "engine-smoke ConfigMap seen by the policy pack" <<<"$out"' _ "$WORK/pack-advisory"
run "preview --policy-pack (mandatory violation fails the preview)" 0 \
  bash -c 'if out="$(pulumi preview --non-interactive --policy-pack "$1" 2>&1)"; then echo "$out"; exit 1; fi
           echo "$out"; grep -q "mandatory.*no-smoke-configmap\|engine-smoke ConfigMap seen by the policy pack" <<<"$out"' _ "$WORK/pack-mandatory"
run "pulumi destroy --yes" 0 pulumi destroy --yes --non-interactive --skip-preview
run "pulumi stack rm" 0 pulumi stack rm --yes smoke

printf '%d passed, %d failed\n' "$passed" "$failed"
(( failed == 0 ))
