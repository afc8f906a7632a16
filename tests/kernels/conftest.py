import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes tens of seconds (Triton interpreter, AOT compiles)")


@pytest.fixture(autouse=True)
def _no_backend_override(monkeypatch):
    # a FLASH_SIGMOID_BACKEND left in the environment would silently reroute the dispatch tests
    monkeypatch.delenv("FLASH_SIGMOID_BACKEND", raising=False)
