"""Whole-exercise runs (a real-time lab per submission, up to two minutes each) are ``slow``.

The default test command skips them (`-m "not slow"`); `bash scripts/test.sh -m slow` runs
them. The static checks of the curriculum and the virtual-clock tests stay in the default run.
"""

from __future__ import annotations

import pytest

REAL_TIME_RUNS = (
    "test_the_reference_solution_passes",
    "test_the_starter_fails",
    "test_a_gateway_decoding_the_wrong_word_order_is_told_so",
    "test_05_without_the_reset_the_setpoint_alone_gets_nowhere",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.name.split("[")[0] in REAL_TIME_RUNS:
            item.add_marker(pytest.mark.slow)
