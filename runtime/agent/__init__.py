"""The boundary between a worker and the payload it runs (the agent, untrusted).

=============  =================================================================
``protocol``   the ``@larry {...}`` line protocol and the payload's environment: what a
               payload may report, validated before anything is charged
``payload``    one payload process per task, run by a keeper (a child subreaper):
               started, read, and stopped with everything it started
``simulated``  the built-in simulated payload (``larry simulate``) that plays the
               seeds' workers without an AI agent
``master``     the built-in master, played by its Larry's coordinator: reviews its
               workers' tasks on its personal budget, releases its finished pool
``usage``      usage adapters: meter an agent CLI from its own output (tokens charged
               once per key, reconciled to the CLI's final total; failure as it reports it)
=============  =================================================================
"""
