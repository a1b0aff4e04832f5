"""Browser tests: the catalogue stack fixture comes from tests/conftest.py."""


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: drives JupyterLab in a real browser (Debian chromium + playwright)")
