"""The public test kit of eolab: fault members, the hub session driver, stack helpers.

Tests, benchmarks and anyone testing an eolab deployment import from here:
:mod:`eolab.testing.faults` (real STAC members that misbehave on purpose), :mod:`eolab.testing.hub`
(:class:`~eolab.testing.hub.HubSession`, one user driving a hub over HTTP) and
:mod:`eolab.testing.stack` (free ports, test stacks, listening sockets). Keep the kit to these three.
"""
