"""What every pod of a stack sees, named once for the components that render it and the
runtime that reads it: where the plan is mounted, the coordination volume's layout, the
coordinator's port, the runtime's user and the worker Jobs' retry limit.
"""

#: The user and group the runtime image runs as (the Dockerfile creates it).
RUNTIME_UID = 10001

#: The plan ConfigMap: its keys and where pods mount it read-only.
PLAN_DIR = "/etc/larry"
PLAN_KEY = "plan.yaml"
LARRY_ID_KEY = "larry-id"
PLAN_PATH = f"{PLAN_DIR}/{PLAN_KEY}"

#: The shared coordination volume and the fenced results on it.
COORDINATION_DIR = "/coordination"
RESULTS_DIR = f"{COORDINATION_DIR}/results"

#: A coordinator's HTTP port: /metrics and /healthz.
COORDINATOR_PORT = 9100

#: How often a worker Job (and `larry run`'s supervisor) restarts a worker that failed.
WORKER_BACKOFF_LIMIT = 3
