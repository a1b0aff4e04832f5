"""Browser tests (marker `e2e`): the catalogue stack fixture comes from tests/conftest.py."""
