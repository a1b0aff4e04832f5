"""The public test kit of eolab: fault members, the hub session driver, stack helpers.

Tests, benchmarks and anyone testing an eolab deployment import from here. Modules:
:mod:`eolab.testing.hub` (:class:`~eolab.testing.hub.HubSession`, one user driving a hub over
HTTP); ``faults`` (misbehaving STAC members) and ``stack`` (helpers around the local stack) join it.
Keep the kit to these three concerns.
"""
