"""Agent profiles (``larry:agents``, issue 14): every field read and bounded, every mistake one
line naming the key, and no credential ever accepted as a value or shown in a message."""
import copy

import pytest
import yaml

from plan.loader import load_config, load_plan_document, load_stack
from plan.model import (
    COMMAND_PLACEHOLDERS,
    AgentProfile,
    Egress,
    ModelPrice,
    SecretRef,
    expand_command,
    looks_like_secret,
)
from plan.pods import AGENT_HOME_ENV
from tests.plan.test_config import _dev_values, _problems, _worker
from tests.plan.test_strict_config import fuzz
from tests.support.project import ROOT

CLAUDE = {
    "command": ["claude", "-p", "{title}", "--output-format", "stream-json", "--verbose"],
    "usage": "claude-code",
    "image": "ghcr.io/example/larry-claude:2.1.332",
    "env": {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "CLAUDE_CODE_MAX_OUTPUT_TOKENS": 4096},
    "secretEnv": {"ANTHROPIC_API_KEY": {"secret": "anthropic", "key": "api-key"}},
    "egress": [{"service": "egress-proxy.proxy", "ports": [3128]}, {"cidr": "10.0.0.0/8", "ports": [443]}],
    "prices": {"claude-sonnet-4-5": {"input": 3, "output": 15, "cacheRead": 0.3, "cacheWrite": 3.75}},
    "maxTurns": 30,
    "maxRetries": 2,
}
CODEX = {"command": ["codex", "exec", "--json", "{title}"], "usage": "codex"}


def _with(agents, default=None, **edits):
    values = _dev_values()
    values["larry:agents"] = {**values.get("larry:agents", {}), **copy.deepcopy(agents)}
    if default is not None:
        values["larry:defaultAgent"] = default
    for where, agent in edits.items():
        larry, kind, index = where.split("_")
        values["larry:larrys"][int(larry)][kind][int(index)]["agent"] = agent
    return values


def _claude(**changes):
    """The CLAUDE profile with ``changes`` (a value of None removes the key)."""
    profile = copy.deepcopy(CLAUDE)
    for key, value in changes.items():
        if value is None:
            profile.pop(key)
        else:
            profile[key] = value
    return {"claude": profile}


def test_a_profile_is_read_field_by_field():
    cfg = load_config(_with(_claude(), default="claude"), "dev")
    assert cfg.agents["claude"] == AgentProfile(
        name="claude", command=tuple(CLAUDE["command"]), usage="claude-code", image=CLAUDE["image"],
        env={"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "CLAUDE_CODE_MAX_OUTPUT_TOKENS": "4096"},
        secret_env={"ANTHROPIC_API_KEY": SecretRef("anthropic", "api-key")},
        egress=(Egress(service="egress-proxy.proxy", ports=(3128,)), Egress(cidr="10.0.0.0/8", ports=(443,))),
        prices={"claude-sonnet-4-5": ModelPrice("claude-sonnet-4-5", 3, 15, 0.3, 3.75)},
        max_turns=30, max_retries=2)


def test_optional_fields_default_to_nothing_and_the_runtime_image():
    values = _with({"codex": CODEX})
    values["larry:runtimeImage"] = "registry.example/larry-runtime:9.9"
    profile = load_config(values, "dev").agents["codex"]
    assert profile.image == "registry.example/larry-runtime:9.9"
    assert (profile.env, profile.secret_env, profile.egress, profile.prices) == ({}, {}, (), {})
    assert (profile.max_turns, profile.max_retries) == (None, None)


def test_workers_and_masters_resolve_their_profile_the_default_or_none():
    values = _with({"claude": CLAUDE, "codex": CODEX}, **{"0_workers_1": "codex", "0_masters_0": "codex"})
    cfg = load_config(values, "dev")
    larry = cfg.larrys[0]
    assert cfg.agent_of(larry.workers[1]).name == "codex"
    assert cfg.agent_of(larry.masters[0]).name == "codex"
    assert cfg.agent_of(larry.workers[0]) is None  # no default: the simulated payload
    values["larry:defaultAgent"] = "claude"
    cfg = load_config(values, "dev")
    assert cfg.agent_of(cfg.larrys[0].workers[0]).name == "claude"
    assert cfg.agent_of(cfg.larrys[0].workers[1]).name == "codex"


@pytest.mark.parametrize("stack", ["dev", "cortex"])
def test_the_committed_stacks_run_inventory_for_their_catalog_workers_and_the_simulation_elsewhere(stack):
    cfg = load_stack(stack, ROOT)
    assert set(cfg.agents) == {"inventory"} and cfg.default_agent is None
    assert cfg.agents["inventory"].command == ("larry", "inventory", "--or-simulate")
    profiled = {w.name for _, w in cfg.workers if cfg.agent_of(w) is not None}
    assert profiled and all(name.startswith("catalog-worker") for name in profiled), profiled


def test_profiles_survive_the_plan_document():
    cfg = load_config(_with(_claude(), default="claude"), "dev")
    again = load_plan_document(cfg.plan_document(), "plan.yaml")
    assert again.agents == cfg.agents and again.default_agent == "claude"


@pytest.mark.parametrize("agents,edits,expected", [
    (_claude(comand=["x"]), {}, "larry:agents.claude.comand: unknown key (did you mean 'command'?)"),
    (_claude(command=None), {}, "larry:agents.claude.command: required key is missing (expected a list)"),
    (_claude(command=[]), {}, "larry:agents.claude.command: expected at least one argument (the program)"),
    (_claude(command="claude -p"), {}, "larry:agents.claude.command: expected a list, got string 'claude -p'"),
    (_claude(command=["", "x"]), {}, "larry:agents.claude.command[0]: expected the program to run, got an empty string"),
    (_claude(command=["claude", 5]), {}, "larry:agents.claude.command[1]: expected a string, got number 5"),
    (_claude(command=["claude", "{task}"]), {},
     "larry:agents.claude.command[1]: unknown placeholder {task} (expected one of {task_id}, {title}, "
     "{prompt_file}, {results_dir}; write {{ or }} for a literal brace)"),
    (_claude(command=["claude", "{title!r}"]), {}, "larry:agents.claude.command[1]: unknown placeholder {title!r}"),
    (_claude(command=["claude", "{}"]), {}, "larry:agents.claude.command[1]: unknown placeholder {}"),
    (_claude(command=["claude", "a}b"]), {},
     "larry:agents.claude.command[1]: 'a}b' has a lone '{' or '}' (write {{ or }} for a literal brace)"),
    (_claude(command=["claude", "a\0b"]), {}, "larry:agents.claude.command[1]: a command argument cannot hold a NUL"),
    (_claude(usage="claude"), {},
     "larry:agents.claude.usage: 'claude' is not one of claude-code, codex, aider, larry-protocol"),
    (_claude(usage=None), {}, "larry:agents.claude.usage: required key is missing"),
    (_claude(image=""), {}, "larry:agents.claude.image: expected a non-empty string, got string ''"),
    (_claude(env={"1X": "a"}), {}, "larry:agents.claude.env.1X: environment variable name '1X' is not a valid one"),
    (_claude(env={"HOME": "/root"}), {}, "larry:agents.claude.env.HOME: is set by larry"),
    (_claude(env={"LARRY_TOKEN_BUDGET": "1"}), {}, "larry:agents.claude.env.LARRY_TOKEN_BUDGET: is set by larry"),
    (_claude(env={"DEBUG": True}), {},
     "larry:agents.claude.env.DEBUG: expected a string (quote booleans and decimals), got boolean True"),
    (_claude(env=["A=1"]), {}, "larry:agents.claude.env: expected a mapping of environment variable names, got a list"),
    (_claude(env={"ANTHROPIC_API_KEY": {"secret": "anthropic", "key": "api-key"}}), {},
     "larry:agents.claude.env.ANTHROPIC_API_KEY: looks like a credential"),
    (_claude(secretEnv={"ANTHROPIC_API_KEY": {"secret": "anthropic"}}), {},
     "larry:agents.claude.secretEnv.ANTHROPIC_API_KEY.key: required key is missing"),
    (_claude(secretEnv={"ANTHROPIC_API_KEY": {"secret": "anthropic", "key": "k", "value": "x"}}), {},
     "larry:agents.claude.secretEnv.ANTHROPIC_API_KEY.value: unknown key (expected one of secret, key)"),
    (_claude(secretEnv={"ANTHROPIC_API_KEY": {"secret": "redis-auth", "key": "password"}}), {},
     "larry:agents.claude.secretEnv.ANTHROPIC_API_KEY.secret: 'redis-auth' holds the Redis password, "
     "which no agent may read"),
    (_claude(secretEnv={"HOME": {"secret": "a", "key": "b"}}), {}, "larry:agents.claude.secretEnv.HOME: is set by larry"),
    (_claude(env={"ANTHROPIC_API_KEY": "x"}, secretEnv=None), {}, "larry:agents.claude.env.ANTHROPIC_API_KEY: looks"),
    (_claude(env={"ANTHROPIC_BASE_URL": "u"}, secretEnv={"ANTHROPIC_BASE_URL": {"secret": "a", "key": "b"}}), {},
     "larry:agents.claude.env.ANTHROPIC_BASE_URL: is set in secretEnv too; give it once"),
    (_claude(egress=[{"cidr": "10.0.0.1/8"}]), {},
     "larry:agents.claude.egress[0].cidr: '10.0.0.1/8' is not a CIDR network address (10.0.0.1/8 has host bits set)"),
    (_claude(egress=[{"cidr": "everywhere"}]), {}, "larry:agents.claude.egress[0].cidr: 'everywhere' is not a CIDR"),
    (_claude(egress=[{"cidr": "10.0.0.0/8", "service": "proxy"}]), {},
     "larry:agents.claude.egress[0]: expected exactly one of cidr, service"),
    (_claude(egress=[{"ports": [443]}]), {}, "larry:agents.claude.egress[0]: expected exactly one of cidr, service"),
    (_claude(egress=[{"service": "Proxy"}]), {},
     "larry:agents.claude.egress[0].service: expected a Service name, or name.namespace (lowercase DNS labels), "
     "got string 'Proxy'"),
    (_claude(egress=[{"service": "a.b.c"}]), {}, "larry:agents.claude.egress[0].service: expected a Service name"),
    (_claude(egress=[{"service": "proxy", "ports": []}]), {},
     "larry:agents.claude.egress[0].ports: expected at least one port (leave ports out to allow every port)"),
    (_claude(egress=[{"service": "proxy", "ports": [70000]}]), {},
     "larry:agents.claude.egress[0].ports[0]: expected a port number (1-65535), got number 70000"),
    (_claude(egress=[{"service": "proxy", "port": 443}]), {},
     "larry:agents.claude.egress[0].port: unknown key (did you mean 'ports'?)"),
    (_claude(egress={"cidr": "10.0.0.0/8"}), {}, "larry:agents.claude.egress: expected a list, got a mapping"),
    (_claude(prices={"m": {"input": -1, "output": 1}}), {},
     "larry:agents.claude.prices.m.input: expected a number of US dollars per million tokens (0 or more), got number -1"),
    (_claude(prices={"m": {"input": 1}}), {}, "larry:agents.claude.prices.m.output: required key is missing"),
    (_claude(prices={"m": {"input": 1, "output": 10**6}}), {},
     "larry:agents.claude.prices.m.output: expected a number of US dollars per million tokens (0 or more) of at most 10,000"),
    (_claude(prices={"m": {"input": 1, "output": 2, "cached": 0}}), {},
     "larry:agents.claude.prices.m.cached: unknown key (did you mean 'cacheRead'?)"),
    (_claude(maxTurns=0), {}, "larry:agents.claude.maxTurns: expected a positive integer, got number 0"),
    (_claude(maxTurns=10**6), {}, "larry:agents.claude.maxTurns: expected a positive integer of at most 10,000"),
    (_claude(maxRetries=-1), {}, "larry:agents.claude.maxRetries: expected a non-negative integer, got number -1"),
    (_claude(maxRetries=101), {}, "larry:agents.claude.maxRetries: expected a non-negative integer of at most 100"),
    (_claude(maxRetries=True), {}, "larry:agents.claude.maxRetries: expected a non-negative integer, got boolean True"),
    ({"Claude": CLAUDE}, {}, "larry:agents.Claude: agent profile name 'Claude' is not a lowercase DNS label"),
    ({"claude": ["claude"]}, {}, "larry:agents.claude: expected a mapping, got a list"),
    (_claude(), {"default": "claud"}, "larry:defaultAgent: 'claud' is not declared in larry:agents"),
    (_claude(), {"0_workers_0": "codex"}, "larry:larrys[0].workers[0].agent: 'codex' is not declared in larry:agents"),
    (_claude(), {"0_masters_1": "codex"}, "larry:larrys[0].masters[1].agent: 'codex' is not declared in larry:agents"),
])
def test_each_mistake_is_one_line_naming_the_key(agents, edits, expected):
    edits = dict(edits)
    message = _problems(_with(agents, edits.pop("default", None), **edits))
    assert len(message.splitlines()) == 1, message
    assert message.startswith(f"Pulumi.dev.yaml: {expected}"), message


def test_an_agent_named_without_any_profiles_is_a_mistake():
    values = _dev_values()
    _worker(values, 0, 0)["agent"] = "claude"
    assert _problems(values) == ("Pulumi.dev.yaml: larry:larrys[0].workers[0].agent: "
                                 "'claude' is not declared in larry:agents")


@pytest.mark.parametrize("profile", [
    _claude(secretEnv={"ANTHROPIC_API_KEY": "sk-ant-api03-VERYSECRET"}),
    _claude(secretEnv={"OPENAI_API_KEY": 12345678901234}),
    _claude(env={"GITHUB_TOKEN": "ghp_VERYSECRET"}),
    _claude(env={"AWS_SECRET_ACCESS_KEY": "VERYSECRET"}),
    _claude(secretEnv={"ANTHROPIC_API_KEY": {"secret": "sk-ant-api03-VERYSECRET", "key": "k"}}),
    _claude(secretEnv={"ANTHROPIC_API_KEY": {"secret": "a", "key": "sk ant VERYSECRET"}}),
])
def test_a_credential_given_as_a_value_is_refused_without_showing_it(profile):
    message = _problems(_with(profile))
    assert len(message.splitlines()) == 1, message
    assert "VERYSECRET" not in message and "12345678901234" not in message
    assert "secretEnv" in message and "not shown" in message


@pytest.mark.parametrize("name,secret", [
    ("ANTHROPIC_API_KEY", True), ("OPENAI_APIKEY", True), ("GITHUB_TOKEN", True), ("ANTHROPIC_AUTH_TOKEN", True),
    ("AWS_SECRET_ACCESS_KEY", True), ("DB_PASSWORD", True), ("GOOGLE_APPLICATION_CREDENTIALS", True),
    ("TOKEN", True), ("client_secret", True),
    ("CLAUDE_CODE_MAX_OUTPUT_TOKENS", False), ("ANTHROPIC_BASE_URL", False), ("TOKENIZER", False),
    ("DISABLE_TELEMETRY", False), ("KEYBOARD", False),
])
def test_what_looks_like_a_secret(name, secret):
    assert looks_like_secret(name) is secret


def test_every_reserved_home_variable_is_refused():
    for name in AGENT_HOME_ENV:
        assert f"larry:agents.claude.env.{name}: is set by larry" in _problems(_with(_claude(env={name: "x"})))


def test_placeholders_expand_to_one_argument_each():
    values = {"task_id": "t-1", "title": "Fix it; rm -rf / $(x)", "prompt_file": "/r/t-1/prompt.md",
              "results_dir": "/r/t-1"}
    assert set(values) == set(COMMAND_PLACEHOLDERS)
    assert expand_command(("agent", "--task={task_id}", "{title}", "@{prompt_file}", "{{literal}}", "{results_dir}/out"),
                          values) == ["agent", "--task=t-1", "Fix it; rm -rf / $(x)", "@/r/t-1/prompt.md",
                                      "{literal}", "/r/t-1/out"]


def test_fuzz_every_key_of_a_profile_with_hostile_values():
    values = _with({"claude": CLAUDE, "codex": CODEX}, "claude", **{"0_workers_0": "codex", "0_masters_0": "codex"})
    assert fuzz(values, values["larry:agents"], "dev") > 20


def test_the_readme_example_loads():
    text = (ROOT / "README.md").read_text()
    start = text.index("```yaml\n  larry:agents:") + len("```yaml\n")
    example = yaml.safe_load(text[start:text.index("```", start)])
    values = _dev_values()
    values.update(example, **{"larry:agents": {**values["larry:agents"], **example["larry:agents"]}})
    cfg = load_config(values, "dev")
    assert set(cfg.agents) == {"claude", "codex", "inventory"} and cfg.agent_of(cfg.larrys[0].workers[0]).name == "claude"
    assert cfg.agents["claude"].secret_env["ANTHROPIC_API_KEY"] == SecretRef("anthropic", "api-key")
    assert cfg.agents["codex"].prices["gpt-5.5"].output == 10


def test_the_dev_stack_s_commented_example_loads():
    text = (ROOT / "Pulumi.dev.yaml").read_text().split("The key is never here.\n", 1)[1]
    profile = [line.removeprefix("  # ") for line in text.splitlines() if line.startswith("  #   ")]
    default = next(line.removeprefix("  # ") for line in text.splitlines() if line.startswith("  # larry:defaultAgent:"))
    example = yaml.safe_load("\n".join(["larry:agents:", *profile, default]))
    values = _dev_values()
    values["larry:agents"].update(example["larry:agents"])
    values["larry:defaultAgent"] = example["larry:defaultAgent"]
    cfg = load_config(values, "dev")
    unnamed = next(w for w in cfg.larrys[2].workers if w.agent is None)
    assert cfg.agent_of(unnamed).usage == "claude-code"
