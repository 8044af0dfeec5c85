"""The asset catalog of seed 004 (`larry catalog serve`) and a worker's way of writing to it.

============  =================================================================
``assets``    an asset, its validation and its natural key (source, type, namespace, name)
``store``     the state in Redis: Lua upserts idempotent by natural key, the change stream
``progress``  a worker's status as ``workerProgress`` announces it
``feed``      the change stream fanned out to one replica's subscriptions
``schema``    the GraphQL schema (seed 004 Appendix C) on strawberry-graphql
``server``    the ASGI app on uvicorn: /graphql, /healthz, /readyz, /metrics
``baseline``  the file of assets the catalog holds before a run
``client``    GraphQL over HTTP for workers
``outbox``    a worker's durable buffer on the volume, replayed when the catalog is back
============  =================================================================
"""
