"""The FLASH_SIGMOID_* environment settings, read once and checked: a misspelt value fails naming the
variable instead of silently meaning the default."""

from __future__ import annotations

import os


def choice(name: str, default: str, choices: tuple[str, ...] = ("0", "1")) -> str:
    """``os.environ[name]`` (``default`` if unset or empty), which must be one of ``choices``."""
    value = os.environ.get(name) or default
    if value not in choices:
        raise ValueError(f"{name}={value!r}: expected one of {', '.join(choices)}")
    return value


def positive_int(name: str) -> int | None:
    """``os.environ[name]`` as a positive integer, or None if unset or empty."""
    value = os.environ.get(name)
    if not value:
        return None
    if not value.isdigit() or int(value) == 0:
        raise ValueError(f"{name}={value!r}: expected a positive integer")
    return int(value)
