"""The federated catalogue broker: one STAC API over many member STAC APIs.

Importing this package needs no web framework; the app is :func:`eolab.catalog.broker.create_app`.
Federation rules are pure functions (``_merge``, ``_paging``, ``_routing``, ``_query``,
``_fallback``, ``_rewrite``); ``_members`` does the HTTP; ``_federation`` ties them together.
The local demo stack that runs members is :mod:`eolab.stack`.
"""
