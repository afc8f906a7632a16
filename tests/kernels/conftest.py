import importlib.util
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parents[2] / "scripts"


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes tens of seconds (Triton interpreter, AOT compiles)")


@pytest.fixture(autouse=True)
def _no_backend_override(monkeypatch):
    # a FLASH_SIGMOID_BACKEND left in the environment would silently reroute the dispatch tests
    monkeypatch.delenv("FLASH_SIGMOID_BACKEND", raising=False)


@pytest.fixture
def load_script():
    """scripts/<name>.py imported as a module (the scripts are not a package)."""

    def load(name):
        spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
