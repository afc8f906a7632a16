"""FLASH_SIGMOID_* settings: a misspelt value fails naming the variable, never silently means the default."""

import os
import subprocess
import sys

import pytest
from flash_sigmoid import env


def test_choice_reads_checks_and_defaults(monkeypatch):
    name, choices = "FLASH_SIGMOID_SOME_SETTING", ("0", "1", "auto")
    monkeypatch.delenv(name, raising=False)
    assert env.choice(name, "auto", choices) == "auto"
    monkeypatch.setenv(name, "")  # empty = unset, as `VAR= cmd` leaves it
    assert env.choice(name, "auto", choices) == "auto"
    monkeypatch.setenv(name, "0")
    assert env.choice(name, "auto", choices) == "0"
    monkeypatch.setenv(name, "yes")
    with pytest.raises(ValueError, match=r"FLASH_SIGMOID_SOME_SETTING='yes': expected one of 0, 1, auto"):
        env.choice(name, "auto", choices)


@pytest.mark.parametrize("value, expected", [("", None), ("4096", 4096), ("0", ValueError), ("1e6", ValueError)])
def test_positive_int(monkeypatch, value, expected):
    monkeypatch.setenv("FLASH_SIGMOID_CPU_BLOCK", value)
    if expected is ValueError:
        with pytest.raises(ValueError, match="FLASH_SIGMOID_CPU_BLOCK=.*expected a positive integer"):
            env.positive_int("FLASH_SIGMOID_CPU_BLOCK")
    else:
        assert env.positive_int("FLASH_SIGMOID_CPU_BLOCK") == expected


@pytest.mark.parametrize(
    "name, expected",
    [
        ("FLASH_SIGMOID_CPU_KEEP_P", "one of 0, 1"),
        ("FLASH_SIGMOID_CPU_BF16", "one of 0, 1"),
        ("FLASH_SIGMOID_CPU_BLOCK", "a positive integer"),
    ],
)
def test_a_misspelt_setting_fails_the_import_naming_it(name, expected):
    run = subprocess.run(
        [sys.executable, "-c", "import flash_sigmoid"],
        env={**os.environ, name: "true"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0
    assert run.stderr.strip().splitlines()[-1] == f"ValueError: {name}='true': expected {expected}"
