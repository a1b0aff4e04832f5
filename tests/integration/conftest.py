"""Integration tests: real servers on 127.0.0.1 (the stack fixture is in tests/conftest.py)."""

from eolab.testing.stack import free_port_offset, make_stack_config, purge  # noqa: F401  (used by tests)
