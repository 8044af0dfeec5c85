"""What every pod of a stack sees, named once for the components that render it and the
runtime that reads it: where the plan is mounted (a Larry's pods: its slice at PLAN_PATH; the
meta-coordinator: every slice under SLICES_DIR), the coordination volume's layout, the
coordinator's port, the runtime's user, the worker Jobs' retry limit, the Secret holding the
Redis password, where an agent's home lives and what a master's pod is given.
"""
from plan.quantities import ResourceList, Resources

#: The user and group the runtime image runs as (the Dockerfile creates it).
RUNTIME_UID = 10001

#: The plan ConfigMap: its keys and where pods mount it read-only.
PLAN_DIR = "/etc/larry"
PLAN_KEY = "plan.yaml"
LARRY_ID_KEY = "larry-id"
PLAN_PATH = f"{PLAN_DIR}/{PLAN_KEY}"
#: Where the meta-coordinator finds every Larry's slice (``<larry id>.yaml``): the whole plan.
SLICES_DIR = f"{PLAN_DIR}/larrys"

#: The shared coordination volume and the fenced results on it.
COORDINATION_DIR = "/coordination"
RESULTS_DIR = f"{COORDINATION_DIR}/results"

#: A coordinator's HTTP port: /metrics and /healthz.
COORDINATOR_PORT = 9100

#: A master's pod (``larry master``): mostly waiting on Redis, now and then an agent CLI's run.
MASTER_RESOURCES = Resources(ResourceList("500m", "1Gi"), ResourceList("1", "2Gi"))

#: How often a worker Job (and `larry run`'s supervisor) restarts a worker that failed.
WORKER_BACKOFF_LIMIT = 3

#: The Secret, in every namespace that talks to Redis, holding the generated password: no
#: agent profile may read it.
REDIS_AUTH_SECRET = "redis-auth"
REDIS_AUTH_KEY = "password"

#: An agent's home and config directories, on an emptyDir of its own pod (the root filesystem
#: is read-only): what the worker Job sets, and what a profile's env may therefore not set.
AGENT_HOME = "/home/agent"
AGENT_HOME_ENV = {
    "HOME": AGENT_HOME,
    "XDG_CONFIG_HOME": f"{AGENT_HOME}/.config",
    "CLAUDE_CONFIG_DIR": f"{AGENT_HOME}/.claude",
    "CODEX_HOME": f"{AGENT_HOME}/.codex",
}
