"""Label and annotation names the components render and the policy pack reads: the contract
between what gets deployed and what is allowed, kept in one place."""

APP = "app"
WORKER_APP = "larry-worker"
COORDINATOR_APP = "larry-coordinator"
MASTER_APP = "larry-master"

LARRY = "larry.dev/larry"
WORKER = "larry.dev/worker"
MASTER = "larry.dev/master"
#: The run id (``larry:runId``) on every object of the run, pods first: seed 004's
#: ``cortex.execution``, so `kubectl logs -l larry.dev/execution=run-2` reads one run.
EXECUTION = "larry.dev/execution"
#: The agent profile a worker's pod runs: what the profile's egress NetworkPolicy selects.
AGENT = "larry.dev/agent"

# Budget annotations: plain numbers, known during preview, so no policy is skipped.
TOKENS = "larry.dev/tokens"
MINUTES = "larry.dev/minutes"
PHASE_DEADLINE = "larry.dev/phase-deadline-minutes"
WINDOW = "larry.dev/execution-window-minutes"
WORKER_TYPE = "larry.dev/worker-type"
EMERGENCY_RESERVE = "larry.dev/emergency-reserve-tokens"
PLAN_DIGEST = "larry.dev/plan-sha256"
SCRIPTS_DIGEST = "larry.dev/scripts-sha256"
