"""What a run reports and how it is read.

================  ============================================================
``schema``        the per-Larry final report: schema, atomic writer, validating loader
``larry_report``  a coordinator's report of its Larry, from Redis and the volume
``history``       a Larry's event stream folded: attempts, restarts, alerts, pauses
``validation``    a Larry's Phase 4 checks (the seeds' success criteria)
``results``       the workers' fenced result files on the volume
``summary``       convergence: reports -> N-LARRY-EXECUTION-SUMMARY.md and archive
``metrics``       a coordinator's Prometheus metrics and /metrics, /healthz
``progress``      the progress lines `larry run` prints (ProgressPrinter)
``run_view``      the run's read model from Redis (status, dashboard)
``run_text``      the words and colours status and dashboard show it in
================  ============================================================
"""
