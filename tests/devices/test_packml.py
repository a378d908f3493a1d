"""The PackML state machine of the simulated PLC, through its logic block."""

from __future__ import annotations

from typing import Any

from devices.plc.blocks import Block, TagValues, build_block
from devices.plc.packml import TRANSITIONS, PackMLState, Trigger
from simlab.scenario.devices import PackMLSpec

DT = 0.1
S = PackMLState
COMMANDS = ("start", "stop", "reset", "hold", "unhold", "abort", "clear")


def packml(**fields: Any) -> Block:
    spec = {"type": "packml", "name": "line", "state": "state", "execute_output": "run"}
    return build_block(PackMLSpec.model_validate(spec | {c: c for c in COMMANDS} | fields))


def fresh_tags() -> TagValues:
    tags: TagValues = {c: False for c in COMMANDS}
    tags.update({"state": 0.0, "run": False, "level": 1.0})
    return tags


def states(block: Block, tags: TagValues, scans: int, command: str | None = None) -> list[S]:
    """Set ``command`` (if any), scan ``scans`` times; the state after each scan."""
    if command is not None:
        tags[command] = True
    seen = []
    for _ in range(scans):
        block.scan(DT, tags)
        seen.append(S(int(tags["state"])))
        assert tags["run"] is (seen[-1] is S.EXECUTE)
    return seen


def test_state_codes_follow_packtags() -> None:
    assert [(s.name, s.value) for s in (S.CLEARING, S.STOPPED, S.IDLE, S.EXECUTE)] == [
        ("CLEARING", 1),
        ("STOPPED", 2),
        ("IDLE", 4),
        ("EXECUTE", 6),
    ]
    assert (S.ABORTED, S.HELD, S.RESETTING, S.COMPLETE) == (9, 11, 15, 17)


def test_happy_path_with_its_timings() -> None:
    block = packml(resetting_time=1.0, starting_time=2.0, stopping_time=1.5)
    tags = fresh_tags()
    assert states(block, tags, 3) == [S.STOPPED] * 3
    assert tags["state"] == 2.0
    assert states(block, tags, 11, "reset") == [S.RESETTING] * 10 + [S.IDLE]
    assert states(block, tags, 21, "start") == [S.STARTING] * 20 + [S.EXECUTE]
    assert tags["run"] is True
    assert states(block, tags, 6, "hold") == [S.HOLDING] * 5 + [S.HELD]
    assert states(block, tags, 6, "unhold") == [S.UNHOLDING] * 5 + [S.EXECUTE]
    assert states(block, tags, 16, "stop") == [S.STOPPING] * 15 + [S.STOPPED]
    assert states(block, tags, 2) == [S.STOPPED] * 2


def test_commands_are_consumed_even_without_a_transition() -> None:
    block = packml()
    tags = fresh_tags()
    for command in ("start", "hold", "unhold", "clear", "stop"):
        tags[command] = True
        block.scan(DT, tags)
        assert tags[command] is False
        assert tags["state"] == float(S.STOPPED)
    tags["start"] = True  # a consumed start does not linger until Idle
    block.scan(DT, tags)
    assert states(block, tags, 11, "reset") == [S.RESETTING] * 10 + [S.IDLE]
    assert states(block, tags, 3) == [S.IDLE] * 3


def test_initial_state_idle() -> None:
    block = packml(initial_state="idle", starting_time=0.0)
    tags = fresh_tags()
    assert states(block, tags, 1) == [S.IDLE]
    assert states(block, tags, 2, "start") == [S.STARTING, S.EXECUTE]


def test_abort_from_execute_then_clear() -> None:
    block = packml(initial_state="idle", starting_time=0.5)
    tags = fresh_tags()
    assert states(block, tags, 6, "start")[-1] is S.EXECUTE
    assert states(block, tags, 6, "abort") == [S.ABORTING] * 5 + [S.ABORTED]
    assert tags["run"] is False
    assert states(block, tags, 2, "reset") == [S.ABORTED] * 2  # only clear leaves Aborted
    assert states(block, tags, 6, "clear") == [S.CLEARING] * 5 + [S.STOPPED]


def test_abort_outranks_stop_in_the_same_scan() -> None:
    block = packml(initial_state="idle")
    tags = fresh_tags()
    tags["stop"] = True
    assert states(block, tags, 1, "abort") == [S.ABORTING]
    assert (tags["stop"], tags["abort"]) == (False, False)


def test_abort_when_aborts_and_blocks_clearing_until_it_is_gone() -> None:
    block = packml(abort_when={"tag": "level", "op": "<", "value": 0.2})
    tags = fresh_tags()
    tags["level"] = 0.1
    assert states(block, tags, 6) == [S.ABORTING] * 5 + [S.ABORTED]
    assert states(block, tags, 2, "clear") == [S.CLEARING, S.ABORTING]
    tags["level"] = 1.0
    assert states(block, tags, 6) == [S.ABORTING] * 4 + [S.ABORTED] * 2
    assert states(block, tags, 6, "clear") == [S.CLEARING] * 5 + [S.STOPPED]


def test_hold_when_holds_automatically_and_unhold_waits_for_it_to_clear() -> None:
    block = packml(
        initial_state="idle", starting_time=0.0, hold_when={"tag": "level", "op": "<", "value": 0.2}
    )
    tags = fresh_tags()
    assert states(block, tags, 2, "start") == [S.STARTING, S.EXECUTE]
    tags["level"] = 0.1
    assert states(block, tags, 6) == [S.HOLDING] * 5 + [S.HELD]
    assert states(block, tags, 3, "unhold") == [S.HELD] * 3
    assert tags["unhold"] is False
    tags["level"] = 1.0
    assert states(block, tags, 2) == [S.HELD] * 2  # the consumed unhold is not remembered
    assert states(block, tags, 6, "unhold") == [S.UNHOLDING] * 5 + [S.EXECUTE]


def test_stop_from_held_and_not_from_aborted() -> None:
    block = packml(initial_state="idle", starting_time=0.0, stopping_time=0.2)
    tags = fresh_tags()
    states(block, tags, 2, "start")
    assert states(block, tags, 6, "hold")[-1] is S.HELD
    assert states(block, tags, 3, "stop") == [S.STOPPING, S.STOPPING, S.STOPPED]
    assert states(block, tags, 1, "abort") == [S.ABORTING]
    assert states(block, tags, 6, "stop") == [S.ABORTING] * 4 + [S.ABORTED] * 2


def test_transition_table_covers_stop_and_abort() -> None:
    stoppable = {s for (s, t) in TRANSITIONS if t is Trigger.STOP}
    assert stoppable == {S.IDLE, S.STARTING, S.EXECUTE, S.HOLDING, S.HELD, S.UNHOLDING, S.RESETTING}
    abortable = {s for (s, t) in TRANSITIONS if t is Trigger.ABORT}
    assert abortable == set(S) - {S.ABORTING, S.ABORTED}
