"""The plan contract every part reads: the Pulumi program (components/), the policy pack
(policies/) and the runtime. It imports neither pulumi nor redis.

===============  ==================================================================
``quantities``   Kubernetes CPU and memory quantities, parsed strictly
``model``        the stack's plan as frozen dataclasses (agent profiles too), and the budget arithmetic
``loader``       reading and validating ``larry:*`` config (ConfigError: one line)
``environment``  every ``LARRY_*`` environment variable name
``labels``       label and annotation names the components render, the policies read
``pods``         plan mount path and keys, volume layout, coordinator port, uid, backoff, agent home
``exits``        the exit codes of every ``larry`` process (ExitCode)
``statuses``     task, phase and worker statuses (StrEnums), TERMINAL, RUNNING
``taskgraph``    the task graph: owners, dependencies, tasks that can never run
===============  ==================================================================
"""
