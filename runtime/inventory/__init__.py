"""`larry inventory`: the cluster read through the Kubernetes API, as catalog assets.

==========  =================================================================
``reader``  the API reads: which kinds, listed how (Secrets and ConfigMaps as metadata only),
            what is skipped (403) and what is a bad answer
``walk``    the objects read, as assets with lineage, owners, tags and health (plain dicts in,
            :class:`runtime.catalog.assets.Asset` out; no I/O)
==========  =================================================================
"""
