"""Loading and validating a stack's ``larry:*`` config: from a stack file (and the plan file
its ``larry:planFile`` names), a rendered plan document — the whole plan or one Larry's
slice — a set of slices joined back into the whole plan, or the values the Pulumi engine
hands the program. A slice is validated as strictly as config, its ``slice:`` index included;
slices are joined only when they are one plan (every Larry's, agreeing on every stack-wide
key), and the whole plan they make is validated again.

Structure and references are checked before any resource is created. Every mistake becomes
one line naming the source, the key path and what was expected, e.g.
``Pulumi.dev.yaml: larry:larrys[2].workers[4].node: 'k3s-worker09' is not declared in
larry:nodes``; all mistakes of a stack are reported together in one :class:`ConfigError`.

Each section is declared once, as a table of fields (config key, dataclass field, kind,
default) — ``_STACK`` and the records it nests — and one generic reader walks the tables:
a record is built only when every field is usable, a list or named mapping keeps its
usable items, and every problem found on the way is reported. Cross-references (nodes,
masters, unique names, dependency targets and cycles) are checked once the structure is
sound. What is not checked here: budgets adding up, and an agent profile's egress being
narrow enough (both the policy pack's job).

Agent profiles (``larry:agents``) never carry a credential: ``secretEnv`` names a Secret and
key, and a plain value there, or a literal value in ``env`` for a variable whose name says
it holds a credential (``plan.model.looks_like_secret``), is a problem whose line does not
show the value.

Nothing is ignored without a word: an unknown key is a problem (with the closest known key
as a suggestion), and so is a key given twice in one YAML mapping (naming both lines); keys
of other namespaces (``kubernetes:context``) are not ours and are left alone. Numbers are
bounded (plan.model's MAX_*). Hostile input — undecodable bytes, a directory, YAML nested
or aliased absurdly, integers too long to read — is one line too, never a traceback.
YAML is parsed by libyaml where PyYAML has it (the pure-Python parser otherwise).
"""
from __future__ import annotations

import difflib
import ipaddress
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from plan.model import (
    ASSIGNMENTS,
    COMMAND_PLACEHOLDERS,
    DEFAULT_ASSIGNMENT,
    DEFAULT_PRIORITY,
    DEFAULT_RUNTIME_IMAGE,
    DEFAULT_STORAGE_CLASS,
    MAX_AGENT_RETRIES,
    MAX_AGENT_TURNS,
    MAX_CATALOG_REPLICAS,
    MAX_COUNT,
    MAX_MILLISECONDS,
    MAX_MINUTES,
    MAX_PRICE_PER_MILLION,
    MAX_QUANTITY,
    MAX_TOKENS,
    PRIORITIES,
    PROJECT,
    USAGE_ADAPTERS,
    AgentProfile,
    Approval,
    Budget,
    Catalog,
    Channels,
    Cluster,
    Egress,
    Larry,
    Master,
    MetaCoordinator,
    ModelPrice,
    Node,
    Observability,
    PlanIndex,
    Redis,
    Rollback,
    SecretRef,
    StackConfig,
    Task,
    UpstreamTask,
    Worker,
    WorkerType,
    command_placeholders,
    looks_like_secret,
    rollback_worker,
)
from plan.pods import AGENT_HOME_ENV, REDIS_AUTH_SECRET
from plan.quantities import ResourceList, Resources, parse_cpu, parse_memory
from plan.taskgraph import TaskGraph

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # RFC 1123 label
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")  # RFC 1123
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")  # a key of a Secret's data
_LABEL_VALUE = re.compile(r"^(?=.{1,63}$)[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")  # a label's value or name
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TASK_ID_TEXT = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


class ConfigError(Exception):
    """A stack configuration mistake: one line per problem, no traceback wanted."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


_REQUIRED = object()  # a field's default: the key must be given
_OMIT = object()  # a field's default: leave it to the dataclass's own default
_INVALID = object()  # what a reader returns once it has reported why the value is unusable


class _Reader:
    """Collects every problem as ``<key path>: <what was expected>`` instead of stopping."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")


def _join(path: str, key: Any) -> str:
    # A key that would not print as itself on one line (a newline, a lone surrogate) is quoted.
    name = _short(key if isinstance(key, str) and key.isprintable() else repr(key))
    return f"{path}.{name}" if path else name


def _short(text: str, limit: int = 60) -> str:
    """Text as a message quotes it: hostile values must not make a line of megabytes."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _quoted(value: Any) -> str:
    return _short(repr(value))


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {value}"
    if isinstance(value, int):
        try:
            return f"number {_short(str(value))}"
        except ValueError:  # too long for Python to print
            return f"a number of more than {sys.get_int_max_str_digits()} digits"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {_quoted(value)}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


#: The stack's top-level values read so far, by config key: for the defaults and references
#: that depend on another section (the worker type a worker names, the stack's storageClass).
Scope = Mapping[str, Any]


class _Kind:
    """How one config value is read: its type is checked first (else "expected <text>, got
    <what it is>"), then ``refine`` checks the rest and converts it. Both return the value
    or, once the problem is reported, _INVALID."""

    text: str  # what is expected, e.g. "a positive integer"

    def accepts(self, value: Any) -> bool:
        raise NotImplementedError

    def read(self, r: _Reader, value: Any, path: str, scope: Scope, **given: Any) -> Any:
        if not self.accepts(value):
            r.fail(path, f"expected {self.text}, got {_describe(value)}")
            return _INVALID
        return self.refine(r, value, path, scope, **given)

    def refine(self, r: _Reader, value: Any, path: str, scope: Scope) -> Any:
        return value


@dataclass(frozen=True)
class _Scalar(_Kind):
    text: str
    test: Callable[[Any], bool]  # the type and range it must have

    def accepts(self, value: Any) -> bool:
        return self.test(value)


@dataclass(frozen=True)
class _Choice(_Scalar):
    choices: tuple[str, ...] = ()

    def refine(self, r: _Reader, value: Any, path: str, scope: Scope) -> Any:
        if value in self.choices:
            return value
        r.fail(path, f"{_quoted(value)} is not one of {', '.join(self.choices)}")
        return _INVALID


@dataclass(frozen=True)
class _Bounded(_Scalar):
    most: int = 0

    def refine(self, r: _Reader, value: Any, path: str, scope: Scope) -> Any:
        if value <= self.most:
            return value
        r.fail(path, f"expected {self.text} of at most {self.most:,}, got {_describe(value)}")
        return _INVALID


@dataclass(frozen=True)
class _Quantity(_Scalar):
    what: str = ""  # "cpu" | "memory"
    parse: Callable[[str], int] = parse_cpu
    example: str = ""
    unit: str = ""  # what parse counts

    def refine(self, r: _Reader, value: Any, path: str, scope: Scope) -> Any:
        text = str(value)
        try:
            amount = self.parse(text)
            if amount <= 0:
                raise ValueError(text)
        except ValueError:
            r.fail(path, f"{_quoted(text)} is not a valid {self.what} quantity (expected e.g. {self.example})")
            return _INVALID
        if amount > MAX_QUANTITY:
            r.fail(path, f"{_quoted(text)} is too large a {self.what} quantity (more than 2^63-1 {self.unit})")
            return _INVALID
        return text


@dataclass(frozen=True)
class _Declared(_Scalar):
    """A name that must be a key of an earlier top-level mapping (e.g. a worker type)."""

    among: str = ""  # the config key of that mapping

    def refine(self, r: _Reader, value: Any, path: str, scope: Scope) -> Any:
        if value in _mapping_or_empty(scope.get(self.among)):
            return value
        r.fail(path, f"{_quoted(value)} is not declared in {self.among}")
        return _INVALID


def _mapping_or_empty(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class _Unshown(_Scalar):
    """A value that may be a credential put in the wrong place: a mistake never quotes it."""

    def read(self, r: _Reader, value: Any, path: str, scope: Scope, **given: Any) -> Any:
        if not self.accepts(value):
            r.fail(path, f"expected {self.text} (the value given is not shown)")
            return _INVALID
        return value


@dataclass(frozen=True)
class _Argument(_Scalar):
    """One argument of an agent's command: text whose braces are COMMAND_PLACEHOLDERS."""

    def refine(self, r: _Reader, value: Any, path: str, scope: Scope) -> Any:
        expected = ", ".join("{" + name + "}" for name in COMMAND_PLACEHOLDERS)
        try:
            unknown = [name for name in command_placeholders(value) if name not in COMMAND_PLACEHOLDERS]
        except ValueError:
            r.fail(path, f"{_quoted(value)} has a lone '{{' or '}}' (write {{{{ or }}}} for a literal brace)")
            return _INVALID
        if unknown:
            r.fail(path, f"unknown placeholder {{{unknown[0]}}} (expected one of {expected}; "
                         "write {{ or }} for a literal brace)")
            return _INVALID
        if "\0" in value:
            r.fail(path, "a command argument cannot hold a NUL character")
            return _INVALID
        return value


@dataclass(frozen=True)
class _Cidr(_Scalar):
    def refine(self, r: _Reader, value: Any, path: str, scope: Scope) -> Any:
        try:
            return str(ipaddress.ip_network(value.strip(), strict=True))
        except ValueError as exc:
            r.fail(path, f"{_quoted(value)} is not a CIDR network address ({exc})")
            return _INVALID


@dataclass(frozen=True)
class _Variable(_Kind):
    """One variable of an agent's environment, read with its name (a ``_Named`` item): a plain
    value (``env``) or the Secret key holding it (``secretEnv``, never the value itself)."""

    secret: bool
    text: str = "a value"

    def read(self, r: _Reader, value: Any, path: str, scope: Scope, **given: Any) -> Any:
        name = given["name"]
        if name in AGENT_HOME_ENV or name.startswith("LARRY_"):
            r.fail(path, "is set by larry (the agent's home, the run's LARRY_* variables); a profile may not set it")
            return _INVALID
        if self.secret:
            if not isinstance(value, Mapping):
                r.fail(path, "a plain value is not allowed here (the value given is not shown): "
                             "expected {secret: NAME, key: KEY}, the Kubernetes Secret and key holding it")
                return _INVALID
            return _SECRET_REF.read(r, value, path, scope)
        if looks_like_secret(name):
            r.fail(path, "looks like a credential: a literal value (not shown) would sit in the stack file, "
                         "the plan ConfigMap and the pod spec; give it in secretEnv as {secret: NAME, key: KEY}")
            return _INVALID
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            r.fail(path, f"expected a string (quote booleans and decimals), got {_describe(value)}")
            return _INVALID
        return str(value)


def _not_redis_auth(r: _Reader, ref: SecretRef, path: str) -> None:
    if ref.secret == REDIS_AUTH_SECRET:
        r.fail(f"{path}.secret", f"{REDIS_AUTH_SECRET!r} holds the Redis password, which no agent may read")


@dataclass(frozen=True)
class _LabelValue(_Scalar):
    """A Kubernetes label's value, read with its name (a ``_Named`` item)."""

    def refine(self, r: _Reader, value: Any, path: str, scope: Scope, **given: Any) -> Any:
        return value


def _label_value(value: Any) -> bool:
    return isinstance(value, str) and (value == "" or bool(_LABEL_VALUE.match(value)))


def _label_key(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    prefix, _, name = value.rpartition("/")
    return (not prefix or (len(prefix) <= 253 and bool(_SUBDOMAIN.match(prefix)))) and bool(_LABEL_VALUE.match(name))


@dataclass(frozen=True)
class _From:
    """A default computed from (the record's values read so far, the scope), by config key;
    _REQUIRED when it cannot be."""

    compute: Callable[[Mapping[str, Any], Scope], Any]


@dataclass(frozen=True)
class _Field:
    key: str  # as written in the config (camelCase)
    kind: _Kind
    default: Any = _REQUIRED  # a value, _REQUIRED, _OMIT or _From
    attr: str = ""  # the dataclass field it fills: by default the key in snake_case

    def __post_init__(self) -> None:
        if not self.attr:
            snake = re.sub(r"(?<!^)(?=[A-Z])", "_", self.key.removeprefix(f"{PROJECT}:")).lower()
            object.__setattr__(self, "attr", snake)


@dataclass(frozen=True)
class _Record(_Kind):
    """A mapping of known keys that builds one dataclass; unusable when any field is."""

    build: Callable[..., Any]
    fields: tuple[_Field, ...]
    text: str = "a mapping"
    #: Checks between fields once the object is built: (reader, object, path).
    check: Callable[[_Reader, Any, str], None] | None = None
    #: Its values are the scope of every record below it (the stack's top level).
    is_scope: bool = False

    @cached_property
    def keys(self) -> list[str]:
        return [f.key for f in self.fields]

    def accepts(self, value: Any) -> bool:
        return isinstance(value, Mapping)

    def refine(self, r: _Reader, value: Any, path: str, scope: Scope, **given: Any) -> Any:
        for unknown in [k for k in value if k not in self.keys]:
            r.fail(_join(path, unknown), _unknown_key(unknown, self.keys))
        local: dict[str, Any] = scope if self.is_scope else {}  # type: ignore[assignment]
        values = dict(given)
        usable = True
        for f in self.fields:
            raw, fpath = value.get(f.key), f"{path}.{f.key}" if path else f.key
            if raw is not None:
                result = f.kind.read(r, raw, fpath, scope)
            else:
                result = f.default.compute(local, scope) if isinstance(f.default, _From) else f.default
                if result is _OMIT:
                    continue
                if result is _REQUIRED:
                    r.fail(fpath, f"required key is missing (expected {f.kind.text})")
                    result = _INVALID
            local[f.key] = values[f.attr] = result
            usable = usable and result is not _INVALID
        if not usable:
            return _INVALID
        built = self.build(**values)
        if self.check:
            self.check(r, built, path)
        return built


def _unknown_key(key: Any, known: list[str]) -> str:
    """A typo (``dependOn``) must not silently drop what it meant: suggest the closest key."""
    close = difflib.get_close_matches(str(key), known, n=1)
    if close:
        return f"unknown key (did you mean {close[0]!r}?)"
    return f"unknown key (expected one of {', '.join(known)})"


@dataclass(frozen=True)
class _List(_Kind):
    """A list of one kind; its usable items (problems with the others are reported)."""

    item: _Kind
    at_least_one: str | None = None  # the problem when empty, if empty is one
    text: str = "a list"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, list)

    def refine(self, r: _Reader, value: Any, path: str, scope: Scope) -> Any:
        if not value and self.at_least_one:
            r.fail(path, self.at_least_one)
        return self.items(r, value, path, scope)

    def items(self, r: _Reader, value: Any, path: str, scope: Scope) -> Any:
        items = (self.item.read(r, item, f"{path}[{k}]", scope) for k, item in enumerate(value))
        return tuple(item for item in items if item is not _INVALID)


@dataclass(frozen=True, kw_only=True)
class _Named(_List):
    """A mapping of name -> record; each record is built with that name as its ``name``."""

    what: str  # "node"
    name: _Scalar
    text: str = "a mapping"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, Mapping)

    def items(self, r: _Reader, value: Any, path: str, scope: Scope) -> Any:
        items = {}
        for name, spec in value.items():
            if not self.name.accepts(name):
                r.fail(_join(path, name), f"{self.what} name {_quoted(name)} is not {self.name.text}")
                continue
            item = self.item.read(r, spec, _join(path, name), scope, name=name)
            if item is not _INVALID:
                items[name] = item
        return items


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _non_empty_string(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _quantity(value: Any) -> bool:
    # A bare number is a quantity too (memory: 1073741824); one past 64 bits is none, and
    # one past Python's 4300 digits could not even be printed in a message.
    if isinstance(value, str):
        return True
    return isinstance(value, int) and not isinstance(value, bool) and value.bit_length() < 64


def _share(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1


# ---- the tables: every section of a stack's config, field by field

_TOKENS = _Bounded("a positive integer", _positive_int, MAX_TOKENS)
_MINUTES = replace(_TOKENS, most=MAX_MINUTES)
_COUNT = replace(_TOKENS, most=MAX_COUNT)
_MILLISECONDS = replace(_TOKENS, most=MAX_MILLISECONDS)
_PORT = _Scalar("a port number (1-65535)", lambda v: _positive_int(v) and v < 65536)
_STRING = _Scalar("a non-empty string", _non_empty_string)
_NAME = _Scalar("a lowercase DNS label (a-z, 0-9, '-', at most 63 characters)",
                lambda v: isinstance(v, str) and bool(_LABEL.match(v)) and len(v) <= 63)
_TASK_ID = _Scalar("a task id (letters, digits, '-', '_', '.')",
                   lambda v: isinstance(v, str) and bool(_TASK_ID_TEXT.match(v)))
_BOOL = _Scalar("true or false", lambda v: isinstance(v, bool))
_SHARE = _Scalar("a number in (0, 1]", _share)
_QUANTITY = "a Kubernetes quantity string"
_CPU = _Quantity(_QUANTITY, _quantity, "cpu", parse_cpu, '"500m" or "2"', "millicores")
_MEMORY = replace(_CPU, what="memory", parse=parse_memory, example='"512Mi" or "4Gi"', unit="bytes")
_ROLE = _Choice("a non-empty string", _non_empty_string, ("master", "worker"))
_PRIORITY = _Choice("a non-empty string", _non_empty_string, PRIORITIES)
_WORKER_TYPE = _Declared("a non-empty string", _non_empty_string, "larry:workerTypes")

_RESOURCE_LIST = _Record(ResourceList, (_Field("cpu", _CPU), _Field("memory", _MEMORY)))
_RESOURCES = _Record(Resources, (_Field("requests", _RESOURCE_LIST), _Field("limits", _RESOURCE_LIST)),
                     text="a mapping of requests and limits")


def _quorum_within_sentinels(r: _Reader, redis: Redis, path: str) -> None:
    if redis.quorum > redis.sentinels:
        r.fail(f"{path}.quorum", f"{redis.quorum} exceeds the {redis.sentinels} sentinels")


def _from_worker_type(attr: str) -> _From:
    """A declared worker type supplies the defaults for tokens and minutes (seed 004)."""
    def compute(worker: Mapping[str, Any], scope: Scope) -> Any:
        worker_type = _mapping_or_empty(scope.get("larry:workerTypes")).get(worker.get("type"))
        return getattr(worker_type, attr) if worker_type else _REQUIRED
    return _From(compute)


_AGENT_NAME = _Declared("a non-empty string", _non_empty_string, "larry:agents")
_SECRET_REF = _Record(SecretRef, (
    _Field("secret", _Unshown("a Secret name (a lowercase DNS subdomain)",
                              lambda v: isinstance(v, str) and bool(_SUBDOMAIN.match(v)) and len(v) <= 253)),
    _Field("key", _Unshown("a key of the Secret (letters, digits, '-', '_', '.')",
                           lambda v: isinstance(v, str) and bool(_SECRET_KEY.match(v)) and len(v) <= 253)),
), text="a mapping {secret: NAME, key: KEY}", check=_not_redis_auth)


def _one_destination(r: _Reader, egress: Egress, path: str) -> None:
    if (egress.cidr is None) == (egress.service is None):
        r.fail(path, "expected exactly one of cidr, service")


def _runnable(r: _Reader, profile: AgentProfile, path: str) -> None:
    if profile.command and not profile.command[0].strip():
        r.fail(f"{path}.command[0]", "expected the program to run, got an empty string")
    for name in sorted(set(profile.env) & set(profile.secret_env)):
        r.fail(f"{path}.env.{name}", "is set in secretEnv too; give it once")


_VARIABLES = "a mapping of environment variable names"
_VARIABLE_NAME = _Scalar("a valid one (letters, digits and '_', not starting with a digit)",
                         lambda v: isinstance(v, str) and bool(_VARIABLE.match(v)))
_PRICE = _Bounded("a number of US dollars per million tokens (0 or more)",
                  lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0, MAX_PRICE_PER_MILLION)
_AGENT = _Record(AgentProfile, (
    _Field("command", _List(_Argument("a string", lambda v: isinstance(v, str)),
                            "expected at least one argument (the program)")),
    _Field("usage", _Choice("a non-empty string", _non_empty_string, USAGE_ADAPTERS)),
    _Field("image", _STRING, _From(lambda agent, scope: scope.get("larry:runtimeImage", DEFAULT_RUNTIME_IMAGE))),
    _Field("env", _Named(_Variable(secret=False), text=_VARIABLES, what="environment variable",
                         name=_VARIABLE_NAME), _OMIT),
    _Field("secretEnv", _Named(_Variable(secret=True), text=_VARIABLES, what="environment variable",
                               name=_VARIABLE_NAME), _OMIT),
    _Field("egress", _List(_Record(Egress, (
        _Field("cidr", _Cidr("a CIDR string", _non_empty_string), None),
        _Field("service", _Scalar("a Service name, or name.namespace (lowercase DNS labels)",
                                  lambda v: isinstance(v, str) and v.count(".") <= 1
                                  and all(_NAME.accepts(part) for part in v.split("."))), None),
        _Field("ports", _List(_PORT, "expected at least one port (leave ports out to allow every port)"), _OMIT),
    ), text="a mapping {cidr, ports} or {service, ports}", check=_one_destination)), _OMIT),
    _Field("prices", _Named(_Record(ModelPrice, (
        _Field("input", _PRICE),
        _Field("output", _PRICE),
        _Field("cacheRead", _PRICE, _OMIT),
        _Field("cacheWrite", _PRICE, _OMIT),
    )), what="model", name=_STRING), _OMIT),
    _Field("maxTurns", replace(_TOKENS, most=MAX_AGENT_TURNS), _OMIT),
    _Field("maxRetries", _Bounded("a non-negative integer",
                                  lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
                                  MAX_AGENT_RETRIES), _OMIT),
), check=_runnable)

_TASK = _Record(Task, (
    _Field("id", _TASK_ID),
    _Field("title", _STRING),
    _Field("dependsOn", _List(_TASK_ID), _OMIT),
    _Field("priority", _PRIORITY, DEFAULT_PRIORITY),
))
_WORKER = _Record(Worker, (
    _Field("name", _NAME),
    _Field("node", _NAME),
    _Field("type", _WORKER_TYPE, None),
    _Field("tokens", _TOKENS, _from_worker_type("tokens")),
    _Field("minutes", _MINUTES, _from_worker_type("minutes")),
    _Field("resources", _RESOURCES),
    _Field("master", _NAME, None),
    _Field("priority", _PRIORITY, DEFAULT_PRIORITY),
    _Field("agent", _AGENT_NAME, None),
    _Field("tasks", _List(_TASK, "expected at least one task")),
))
_MASTER = _Record(Master, (
    _Field("name", _NAME),
    _Field("personalTokens", _TOKENS),
    _Field("workerPoolTokens", _TOKENS),
    _Field("agent", _AGENT_NAME, None),
))
_LARRY = _Record(Larry, (
    _Field("id", _NAME),
    _Field("phase", _STRING),
    _Field("namespace", _NAME),
    _Field("node", _NAME),
    _Field("workerNodes", _List(_NAME)),
    _Field("deadlineMinutes", _MINUTES),
    _Field("tokenBudget", _TOKENS),
    _Field("storage", _MEMORY),
    _Field("storageClass", _NAME, _From(lambda larry, scope: scope["larry:storageClass"])),
    _Field("clusterRead", _BOOL, False),
    _Field("coordinator", _RESOURCES),
    _Field("masters", _List(_MASTER)),
    _Field("workers", _List(_WORKER, "expected at least one worker")),
    _Field("rollback", _Record(Rollback, (
        _Field("tokens", _TOKENS),
        _Field("minutes", _MINUTES),
        _Field("agent", _AGENT_NAME, None),
        _Field("steps", _List(_Record(Task, (_Field("id", _TASK_ID), _Field("title", _STRING))),
                              "expected at least one step")),
    )), None),
))
_BUDGET = _Record(Budget, (
    _Field("systemTokens", _TOKENS),
    _Field("metaCoordinator", attr="meta", kind=_Record(MetaCoordinator, (
        _Field("orchestrationTokens", _TOKENS),
        _Field("emergencyReserveTokens", _TOKENS),
        _Field("workerPoolTokens", _TOKENS, _OMIT),
    ))),
    _Field("reserveTrigger", _SHARE, _OMIT),
    _Field("utilisationTarget", _SHARE, _OMIT),
))
_NODE = _Record(Node, (
    _Field("role", _ROLE),
    _Field("ip", _STRING),
    _Field("cpu", _CPU),
    _Field("memory", _MEMORY),
))
_REDIS = _Record(Redis, (
    _Field("namespace", _NAME),
    _Field("serviceName", _NAME),
    _Field("port", _PORT),
    _Field("replicas", _COUNT),
    _Field("sentinels", _COUNT),
    _Field("masterName", _NAME, _OMIT),
    _Field("sentinelPort", _PORT, _OMIT),
    _Field("quorum", _COUNT, _OMIT),
    _Field("downAfterMilliseconds", _MILLISECONDS, _OMIT, "down_after_ms"),
    _Field("failoverTimeoutMilliseconds", _MILLISECONDS, _OMIT, "failover_timeout_ms"),
    _Field("storage", _MEMORY, _OMIT),
    _Field("image", _STRING, _OMIT),
    _Field("exporter", _BOOL, _OMIT),
    _Field("exporterImage", _STRING, _OMIT),
    _Field("resources", _RESOURCES, _OMIT),
), check=_quorum_within_sentinels)


def _flat(cls: type, **kinds: _Kind) -> _Record:
    """A flat section whose keys are all optional (the dataclass has every default)."""
    return _Record(cls, tuple(_Field(key, kind, _OMIT) for key, kind in kinds.items()))


_CHANNELS = _flat(Channels, coordination=_STRING, alerts=_STRING, events=_STRING)
_OBSERVABILITY = _flat(Observability, serviceMonitors=_BOOL, grafanaDashboard=_BOOL, prometheusNamespace=_NAME,
                       prometheusLabels=_Named(_LabelValue("a label value (at most 63 letters, digits, '-', '_', '.', "
                                                           "starting and ending with a letter or digit)", _label_value),
                                               text="a mapping of label names to values", what="label",
                                               name=_Scalar("a label name ([prefix/]name)", _label_key)))
_APPROVAL = _flat(Approval, required=_BOOL)
_CLUSTER = _flat(Cluster, kubeconfig=_STRING, context=_STRING, renderDirectory=_STRING)
_CATALOG = _flat(Catalog, enabled=_BOOL, replicas=replace(_COUNT, most=MAX_CATALOG_REPLICAS), port=_PORT,
                 baseline=_STRING)
#: The stack: the fields of StackConfig read from config. Order matters where a default or
#: a reference reads an earlier key (larrys read storageClass, workerTypes and agents; agents
#: read runtimeImage).
_STACK = _Record(lambda storage_class, **fields: fields, (
    _Field("larry:executionWindowMinutes", _MINUTES),
    _Field("larry:storageClass", _NAME, DEFAULT_STORAGE_CLASS),
    _Field("larry:budget", _BUDGET),
    _Field("larry:nodes", _Named(_NODE, "expected at least one node", what="node", name=_NAME)),
    _Field("larry:redis", _REDIS),
    _Field("larry:workerTypes", _Named(_Record(WorkerType, (
        _Field("tokens", _TOKENS),
        _Field("minutes", _MINUTES),
    )), what="worker type", name=_STRING), _OMIT),
    _Field("larry:runtimeImage", _STRING, _OMIT),
    _Field("larry:imagePullSecrets", _List(_NAME), _OMIT),
    _Field("larry:runId", _NAME, _OMIT),
    _Field("larry:agents", _Named(_AGENT, what="agent profile", name=_NAME), _OMIT),
    _Field("larry:defaultAgent", _AGENT_NAME, _OMIT),
    _Field("larry:larrys", _List(_LARRY, "expected at least one Larry")),
    _Field("larry:channels", _CHANNELS, _OMIT),
    _Field("larry:observability", _OBSERVABILITY, _OMIT),
    _Field("larry:cluster", _CLUSTER, _OMIT),
    _Field("larry:approval", _APPROVAL, _OMIT),
    _Field("larry:catalog", _CATALOG, _OMIT),
    _Field("larry:taskAssignment", _Choice("a non-empty string", _non_empty_string, ASSIGNMENTS), DEFAULT_ASSIGNMENT),
), is_scope=True)

#: A slice's ``slice:`` section (plan.model.PlanIndex): written by StackConfig.slice_documents,
#: read back as strictly as config.
_INDEX = _Record(PlanIndex, (
    _Field("larry", _NAME),
    _Field("larrys", _List(_NAME, "expected at least one Larry")),
    _Field("upstream", _List(_Record(UpstreamTask, (
        _Field("id", _TASK_ID),
        _Field("larry", _NAME),
        _Field("worker", _NAME),
        _Field("dependsOn", _List(_TASK_ID), _OMIT),
    ))), _OMIT),
))

#: The key naming a file that holds more of the stack's ``larry:*`` values (``load_config``).
PLAN_FILE_KEY = f"{PROJECT}:planFile"
#: The stack config keys this project reads, without the ``larry:`` prefix.
CONFIG_KEYS = (*(f.key.removeprefix(f"{PROJECT}:") for f in _STACK.fields), PLAN_FILE_KEY.removeprefix(f"{PROJECT}:"))


def _check_references(r: _Reader, cfg: StackConfig) -> None:
    """Cross-references: nodes, roles, masters, unique ids, dependency targets and cycles."""
    seen_larrys: dict[str, str] = {}
    seen_workers: dict[str, str] = {}
    task_owner: dict[str, str] = {}
    for i, larry in enumerate(cfg.larrys):
        lpath = f"larry:larrys[{i}]"
        if larry.id in seen_larrys:
            r.fail(f"{lpath}.id", f"duplicate Larry id {larry.id!r} (also {seen_larrys[larry.id]})")
        seen_larrys.setdefault(larry.id, lpath)
        _check_node(r, cfg, larry.node, f"{lpath}.node", "master")
        for k, node in enumerate(larry.worker_nodes):
            _check_node(r, cfg, node, f"{lpath}.workerNodes[{k}]", "worker")
        masters = [m.name for m in larry.masters]
        for dup in {m for m in masters if masters.count(m) > 1}:
            r.fail(f"{lpath}.masters", f"duplicate master name {dup!r}")
        for j, worker in enumerate(larry.workers):
            wpath = f"{lpath}.workers[{j}]"
            if worker.name in seen_workers:
                r.fail(f"{wpath}.name", f"duplicate worker name {worker.name!r} (also {seen_workers[worker.name]})")
            seen_workers.setdefault(worker.name, wpath)
            if _check_node(r, cfg, worker.node, f"{wpath}.node", "worker") and worker.node not in larry.worker_nodes:
                r.fail(f"{wpath}.node", f"{worker.node!r} is not one of {larry.id}'s workerNodes "
                       f"({', '.join(larry.worker_nodes)})")
            if worker.master is not None and worker.master not in masters:
                r.fail(f"{wpath}.master", f"{worker.master!r} is not a master of {larry.id} "
                       f"({', '.join(masters) or 'none declared'})")
            for k, task in enumerate(worker.tasks):
                tpath = f"{wpath}.tasks[{k}].id"
                if task.id in task_owner:
                    r.fail(tpath, f"duplicate task id {task.id!r} (also {task_owner[task.id]})")
                task_owner.setdefault(task.id, tpath)
    for i, larry in enumerate(cfg.larrys):  # after every plan task: a step may not reuse one's id
        if larry.rollback is None:
            continue
        rpath = f"larry:larrys[{i}].rollback"
        if rollback_worker(larry.id) in seen_workers:
            r.fail(rpath, f"its worker name {rollback_worker(larry.id)!r} is taken by "
                   f"{seen_workers[rollback_worker(larry.id)]}")
        for k, step in enumerate(larry.rollback.steps):
            spath = f"{rpath}.steps[{k}].id"
            if step.id in task_owner:
                r.fail(spath, f"duplicate task id {step.id!r} (also {task_owner[step.id]})")
            task_owner.setdefault(step.id, spath)
    for k, task in enumerate(cfg.upstream):
        if task.id in task_owner:
            r.fail(f"slice.upstream[{k}].id", f"duplicate task id {task.id!r} (also {task_owner[task.id]})")
        task_owner.setdefault(task.id, f"slice.upstream[{k}].id")
    for i, larry in enumerate(cfg.larrys):
        for j, worker in enumerate(larry.workers):
            for k, task in enumerate(worker.tasks):
                for dep in task.depends_on:
                    if dep not in task_owner:
                        r.fail(f"larry:larrys[{i}].workers[{j}].tasks[{k}].dependsOn",
                               f"{dep!r} is not a task id of this stack")
    for k, task in enumerate(cfg.upstream):
        for dep in task.depends_on:
            if dep not in task_owner:
                r.fail(f"slice.upstream[{k}].dependsOn", f"{dep!r} is not a task of this slice or of slice.upstream")
    if cfg.index is not None:
        _check_slice(r, cfg, cfg.index)
    cycle = TaskGraph(cfg).cycle()
    if cycle:
        r.fail(task_owner[cycle[0]].removesuffix(".id") + ".dependsOn",
               "dependency cycle " + " -> ".join(cycle))


def _check_slice(r: _Reader, cfg: StackConfig, index: PlanIndex) -> None:
    """A slice holds its own Larry, one of the stack's, alone."""
    if [larry.id for larry in cfg.larrys] != [index.larry]:
        r.fail("larry:larrys", f"a slice holds its own Larry alone, expected [{index.larry}], "
                               f"got [{', '.join(larry.id for larry in cfg.larrys)}]")
    if index.larry not in index.larrys:
        r.fail("slice.larrys", f"does not list the slice's own Larry {index.larry!r}")
    for dup in sorted({larry for larry in index.larrys if index.larrys.count(larry) > 1}):
        r.fail("slice.larrys", f"duplicate Larry id {dup!r}")
    for k, task in enumerate(index.upstream):
        if task.larry == index.larry or task.larry not in index.larrys:
            r.fail(f"slice.upstream[{k}].larry", f"{task.larry!r} is not another Larry of slice.larrys")


def _check_node(r: _Reader, cfg: StackConfig, node: str, path: str, role: str) -> bool:
    if node not in cfg.nodes:
        r.fail(path, f"{node!r} is not declared in larry:nodes")
        return False
    if cfg.nodes[node].role != role and cfg.only_node is None:
        r.fail(path, f"{node!r} is a {cfg.nodes[node].role} node, expected a {role} node")
        return False
    return True


#: The values a stack config may hold, YAML aliases expanded: four times a 5 MB stack file
#: of 500 Larrys and 10,000 workers. A few lines of nested aliases can expand to billions.
MAX_VALUES = 2_000_000


def _count_values(value: Any, limit: int) -> int:
    """Values in ``value`` (aliases counted each time they are used), up to just past ``limit``.
    Counts dicts and lists, what YAML makes (``Mapping`` would cost a third of a load)."""
    count, containers = 0, [value]
    while containers and count <= limit:
        children = containers.pop()
        children = children.values() if isinstance(children, dict) else children
        count += len(children)
        containers.extend(child for child in children if isinstance(child, (dict, list)))
    return count


def _ours(values: Mapping[Any, Any]) -> dict[str, Any]:
    """The ``larry:*`` values, keys given with or without the prefix; keys of other
    namespaces (``kubernetes:context``) are not ours to judge and are left out."""
    return {key if ":" in key else f"{PROJECT}:{key}": value for key, value in
            ((str(key), value) for key, value in values.items()) if ":" not in key or key.startswith(f"{PROJECT}:")}


def _plan_file(raw: dict[str, Any], source: str, project_dir: Path) -> tuple[str, dict[str, Any]]:
    """Take ``larry:planFile`` out of ``raw`` and read the file it names: (the file as
    messages name it, its ``larry:*`` values). The file holds keys of the stack file's
    ``config:`` shape; a key given both inline and in the file is a mistake (which one
    would win is not for a reader to guess)."""
    given = raw.pop(PLAN_FILE_KEY)
    if not _non_empty_string(given) or Path(given).is_absolute() or ".." in Path(given).parts:
        raise ConfigError([f"{source}: {PLAN_FILE_KEY}: expected a path inside the project, relative to it "
                           f"(e.g. plans/fleet.yaml), got {_describe(given)}"])
    shown = str(Path(source).parent / given)
    named = f"({PLAN_FILE_KEY} in {source})"
    document = _parse_yaml(_read_text(project_dir / given, f"plan file {named}", shown), shown)
    if not isinstance(document, Mapping):
        raise ConfigError([f"{shown}: expected a mapping of larry:* keys, as under a stack file's config: "
                           f"{named}, got {_describe(document)}"])
    foreign = [str(key) for key in document if ":" in str(key) and not str(key).startswith(f"{PROJECT}:")]
    values = _ours(document)
    problems = [f"{shown}: {_short(key)}: only larry:* keys belong in a plan file" for key in foreign]
    if PLAN_FILE_KEY in values:
        problems.append(f"{shown}: {PLAN_FILE_KEY}: a plan file cannot name another plan file")
    problems += [f"{source}: {key}: given both here and in {shown} ({PLAN_FILE_KEY}); give it in one place"
                 for key in values if key in raw]
    if problems:
        raise ConfigError(problems)
    return shown, {key: parse_config_value(value) for key, value in values.items()}


def _source_of(problem: str, sources: Mapping[str, str], default: str) -> str:
    """The file that gave the key a problem's path starts with."""
    key = re.match(rf"{PROJECT}:[A-Za-z]+", problem)
    return sources.get(key.group(0), default) if key else default


def load_config(values: Mapping[str, Any], stack: str, source: str | None = None,
                project_dir: str | Path | None = None, index: PlanIndex | None = None) -> StackConfig:
    """Build and validate a StackConfig from ``larry:*`` values (keys with or without prefix).

    ``larry:planFile`` names a file, relative to ``project_dir`` (default: the directory of
    ``source``), holding more of the values: they are validated as if given inline, and each
    mistake names the file its key came from. The StackConfig's ``values`` hold both, so a
    rendered plan document never depends on the file.

    ``index`` makes the values one Larry's slice (``load_plan_document`` reads it from the
    document): its tasks may wait for the index's upstream tasks.

    Raises ConfigError listing every problem, each prefixed with the file it is in.
    """
    source = source or f"Pulumi.{stack}.yaml"
    raw, sources = _ours(values), {}
    if PLAN_FILE_KEY in raw:
        shown, found = _plan_file(raw, source, Path(project_dir if project_dir is not None else Path(source).parent))
        raw.update(found)
        sources = dict.fromkeys(found, shown)
    if _count_values(raw, MAX_VALUES) > MAX_VALUES:
        raise ConfigError([f"{source}: more than {MAX_VALUES:,} values with YAML aliases expanded "
                           "(more than any stack config holds)"])
    r = _Reader()
    fields = _STACK.read(r, raw, "", {})
    if not r.problems:
        cfg = StackConfig(stack, source, values=raw, index=index, **fields)
        _check_references(r, cfg)
        if not r.problems:
            return cfg
    raise ConfigError([f"{_source_of(p, sources, source)}: {p}" for p in r.problems])


def load_stack_file(path: str | Path, stack: str | None = None) -> StackConfig:
    """Load ``Pulumi.<stack>.yaml`` (or any file of that shape) from disk."""
    path = Path(path)
    cfg = load_plan_document(_read_text(path, "stack file"), str(path))
    return cfg if stack in (None, cfg.stack) else replace(cfg, stack=stack)


def _read_text(path: Path, what: str, shown: str | None = None) -> str:
    """The text of ``path`` (named ``shown`` in messages): unreadable or not UTF-8 is one line."""
    shown = shown or str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"{shown}: {what} not found"]) from None
    except OSError as exc:
        raise ConfigError([f"{shown}: cannot read the file ({exc.strerror})"]) from None
    return _decoded(data, shown)


def _decoded(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError([f"{source}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x})"]) from None


def load_plan_document(text: str, source: str) -> StackConfig:
    """Load a document ``StackConfig.plan_document`` rendered (the whole plan) or one of
    ``StackConfig.slice_documents`` (one Larry's slice), e.g. from a ConfigMap."""
    document = _parse_yaml(text, source)
    if not isinstance(document, Mapping) or not isinstance(document.get("config"), Mapping):
        raise ConfigError([f"{source}: expected a top-level 'config:' mapping"])
    index = None
    if "slice" in document:
        r = _Reader()
        index = _INDEX.read(r, document["slice"], "slice", {})
        if r.problems:
            raise ConfigError([f"{source}: {p}" for p in r.problems])
    values = {k: parse_config_value(v) for k, v in document["config"].items() if str(k).startswith(f"{PROJECT}:")}
    return load_config(values, _stack_name(document, source), source, index=index)


def _stack_name(document: Mapping[str, Any], source: str) -> str:
    stack = document.get("stack")
    if stack is None:
        return Path(source).name.removeprefix("Pulumi.").removesuffix(".yaml")
    if not _STRING.accepts(stack):
        raise ConfigError([f"{source}: stack: expected a stack name, got {_describe(stack)}"])
    return stack


def load_plan_documents(documents: Mapping[str, str], source: str | None = None) -> StackConfig:
    """The whole plan from documents by source: one whole plan (given any number of times)
    or the slices of every Larry of the stack (each any number of times), which must agree
    on everything but their own Larry. The whole plan they make is validated like config,
    its mistakes named after ``source`` (default: the first document's)."""
    texts: dict[str, str] = {}
    for source, text in documents.items():
        texts.setdefault(text, source)
    if not texts:
        raise ConfigError(["no plan document given"])
    loaded = {source: load_plan_document(text, source) for text, source in texts.items()}
    whole = [source for source, cfg in loaded.items() if cfg.index is None]
    if whole:
        if len(loaded) > 1:
            others = ", ".join(source for source in loaded if source != whole[0])
            raise ConfigError([f"{whole[0]}: a whole plan given beside other plans or slices ({others})"])
        return loaded[whole[0]]
    return _joined(loaded, source or next(iter(loaded)))


def _joined(slices: Mapping[str, StackConfig], source: str) -> StackConfig:
    """The whole plan the slices are cut from."""
    (first, cfg), problems, by_larry = next(iter(slices.items())), [], {}
    shared = {key: value for key, value in cfg.values.items() if key != f"{PROJECT}:larrys"}
    for source, each in slices.items():
        theirs = {key: value for key, value in each.values.items() if key != f"{PROJECT}:larrys"}
        larry = each.index.larry
        if larry in by_larry:
            problems.append(f"{source}: a second, different slice of {larry} (also {by_larry[larry]})")
        by_larry.setdefault(larry, source)
        if each.stack != cfg.stack:
            problems.append(f"{source}: stack: {each.stack!r}, but {first} is of stack {cfg.stack!r}")
        if each.index.larrys != cfg.index.larrys:
            problems.append(f"{source}: slice.larrys differs from {first}'s")
        for key in sorted({*shared, *theirs}):
            if shared.get(key) != theirs.get(key):
                problems.append(f"{source}: {key} differs from {first}'s (slices of one plan share it)")
    missing = [larry for larry in cfg.index.larrys if larry not in by_larry]
    if missing:
        problems.append(f"{first}: no slice of {', '.join(missing)} (slice.larrys lists every Larry of the plan)")
    if problems:
        raise ConfigError(problems)
    entries = [slices[by_larry[larry]].values[f"{PROJECT}:larrys"][0] for larry in cfg.index.larrys]
    return load_config({**shared, f"{PROJECT}:larrys": entries}, cfg.stack, source)


def load_plan_path(path: str | Path) -> StackConfig:
    """A plan file (a stack file, a whole plan or one Larry's slice) or a directory of plan
    files, read with :func:`load_plan_documents` (every ``*.yaml`` in it, hidden ones aside:
    a mounted ConfigMap keeps its bookkeeping in hidden entries)."""
    path = Path(path)
    if not path.is_dir():
        return load_stack_file(path)
    files = sorted(path.glob("*.yaml"))
    if not files:
        raise ConfigError([f"{path}: no plan file (*.yaml) in this directory"])
    return load_plan_documents({str(file): _read_text(file, "plan file") for file in files}, str(path))


def _strict_loader(base: type) -> type:
    """``base`` refusing what safe_load lets pass: a key given twice in one mapping (the
    last would silently win) and integers too long for Python to read (a ValueError)."""

    class StrictLoader(base):  # type: ignore[misc, valid-type]
        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.duplicates: list[str] = []
            self.checked: set[yaml.Node] = set()

        def flatten_mapping(self, node: yaml.MappingNode) -> None:
            # Checked here, before merge keys (``<<``) splice their pairs into node.value:
            # an explicit key may override a merged one. Once per node (merging flattens
            # the merged node in place).
            if node not in self.checked:
                self.checked.add(node)
                # Keys compared as written (tag and text): constructing each key here
                # would cost a tenth of the load; other keys are the constructor's to judge.
                first: dict[tuple[str, str], yaml.Node] = {}
                for key_node, _ in node.value:
                    if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    earlier = first.setdefault((key_node.tag, key_node.value), key_node)
                    if earlier is not key_node:
                        self.duplicates.append(f"line {key_node.start_mark.line + 1}: duplicate key "
                                               f"{_quoted(key_node.value)} (first at line {earlier.start_mark.line + 1})")
            super().flatten_mapping(node)

        def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
            try:
                return super().construct_yaml_int(node)
            except ValueError:
                raise yaml.constructor.ConstructorError(
                    None, None, f"an integer of {len(node.value)} digits is too long", node.start_mark) from None

    StrictLoader.add_constructor("tag:yaml.org,2002:int", StrictLoader.construct_yaml_int)
    return StrictLoader


if yaml.__with_libyaml__:
    from yaml.cyaml import CParser

    class _CLoader(Composer, CParser, SafeConstructor, Resolver):  # type: ignore[misc]
        """libyaml scans and parses (most of the time pure-Python YAML takes); the Python
        composer builds the nodes. yaml.CSafeLoader composes in C too, recursively: a
        document nested 100,000 deep crashes the process (SIGSEGV), where the Python
        composer raises RecursionError, which becomes one line."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

    _StackLoader = _strict_loader(_CLoader)
else:  # pragma: no cover - PyYAML built without libyaml
    _StackLoader = _strict_loader(yaml.SafeLoader)


def _parse_yaml(text: str, source: str) -> Any:
    loader = None
    try:
        loader = _StackLoader(text)  # the pure-Python reader checks characters here
        document = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = ", ".join(part for part in (exc.context, exc.problem) if part)
        raise ConfigError([f"{source}: not valid YAML ({where}{what})"]) from None
    except yaml.reader.ReaderError as exc:  # a control character
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError([f"{source}: not valid YAML (line {line}: {str(exc).splitlines()[0]})"]) from None
    except UnicodeEncodeError as exc:  # libyaml reads UTF-8: a lone surrogate (text from JSON) has none
        line = text.count("\n", 0, exc.start) + 1
        raise ConfigError([f"{source}: not valid YAML (line {line}: {exc.reason})"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: not valid YAML ({str(exc).splitlines()[0]})"]) from None
    except RecursionError:
        raise ConfigError([f"{source}: not valid YAML (nested more deeply than any stack config)"]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if loader.duplicates:
        raise ConfigError([f"{source}: {duplicate}" for duplicate in loader.duplicates])
    return document


def parse_config_value(value: Any) -> Any:
    """A top-level config value read one way from the engine and from a stack file: the
    engine hands every value over as text (structured ones as JSON) and `pulumi config set`
    stores scalars as strings ("45"), so text that parses as JSON is that JSON, and any other
    text (e.g. ``storageClass: longhorn``) stays a string."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):  # not JSON, or JSON nested absurdly deep
            return value
    return value


def load_stack(stack: str, project_dir: str | Path = ".") -> StackConfig:
    return load_stack_file(Path(project_dir) / f"Pulumi.{stack}.yaml", stack)
