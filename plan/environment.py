"""Every ``LARRY_*`` environment variable of a run, named once: what components/ renders into the pods,
what the runtime's processes read and what a worker hands its payload. Both sides import
these names, so the rendered and the read cannot drift apart.
"""

# ---- Redis: rendered into every pod (components.runtime_pod), read by runtime.coordination.connection
REDIS_URL = "LARRY_REDIS_URL"
REDIS_SENTINELS = "LARRY_REDIS_SENTINELS"
REDIS_MASTER_NAME = "LARRY_REDIS_MASTER_NAME"
REDIS_PASSWORD = "LARRY_REDIS_PASSWORD"
REDIS_SENTINEL_PASSWORD = "LARRY_REDIS_SENTINEL_PASSWORD"
#: Runtime only: how long commands are retried (s) and the socket timeout (s).
REDIS_RETRY_FOR = "LARRY_REDIS_RETRY_FOR"
REDIS_SOCKET_TIMEOUT = "LARRY_REDIS_SOCKET_TIMEOUT"
#: Runtime only: seconds Redis may stay unreachable before a worker degrades to file-based
#: coordination on the volume (default: the retry window above; ``off`` disables it).
DEGRADE_AFTER = "LARRY_DEGRADE_AFTER"
#: Runtime only: the unscaled seconds every deadline gets on top of ``minutes * 60 / speed``.
DEADLINE_ALLOWANCE = "LARRY_DEADLINE_ALLOWANCE"
#: Benchmarks only: a directory where each process writes the time it spent in Redis calls.
CALL_STATS_DIR = "LARRY_CALL_STATS_DIR"

# ---- a process of the run (command-line defaults; the local supervisor sets them for its children)
LARRY_ID = "LARRY_ID"
WORKER_ID = "LARRY_WORKER_ID"
PLAN = "LARRY_PLAN"
PROJECT_DIR = "LARRY_PROJECT_DIR"
COORDINATION_DIR = "LARRY_COORDINATION_DIR"
KEY_PREFIX = "LARRY_KEY_PREFIX"
SPEED = "LARRY_SPEED"
#: The level every process of a run logs at (runtime.support.logs): DEBUG, INFO, WARNING, ERROR.
LOG_LEVEL = "LARRY_LOG_LEVEL"
ARCHIVE_S3_URL = "LARRY_ARCHIVE_S3_URL"
#: The catalog's GraphQL endpoint a worker reports assets to (default: the stack's
#: ``larry:catalog`` Service when enabled; `larry run` sets its local one).
CATALOG_URL = "LARRY_CATALOG_URL"
#: Prometheus's base URL for seed 004's Phase 0 check (``/-/ready``); unset: no Prometheus check.
PROMETHEUS_URL = "LARRY_PROMETHEUS_URL"

# ---- rendered into the pods for the payloads (the runtime itself does not read them)
MASTER = "LARRY_MASTER"
TASK_IDS = "LARRY_TASK_IDS"
DEADLINE_MINUTES = "LARRY_DEADLINE_MINUTES"
NAMESPACE = "LARRY_NAMESPACE"

# ---- what a worker gives each payload run (runtime.protocol documents them)
TASK_ID = "LARRY_TASK_ID"
TASK_TITLE = "LARRY_TASK_TITLE"
#: The worker the plan lists the task under (in queue assignment not always the one running it).
TASK_WORKER = "LARRY_TASK_WORKER"
TASK_MINUTES = "LARRY_TASK_MINUTES"
#: In a pod, the worker's (or coordinator's) whole budget; for a payload, its share.
TOKEN_BUDGET = "LARRY_TOKEN_BUDGET"
FENCE = "LARRY_FENCE"
RESULTS_DIR = "LARRY_RESULTS_DIR"
#: The task's prompt, as a Markdown file: title, phase, the results of its dependencies.
PROMPT_FILE = "LARRY_PROMPT_FILE"
PROTOCOL_FILE = "LARRY_PROTOCOL_FILE"
