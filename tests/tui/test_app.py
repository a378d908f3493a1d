"""The app shell: it paints, starts the lab, moves between screens, helps and quits cleanly."""

from __future__ import annotations

from simlab.tui import SimlabApp
from simlab.tui.screens.help import HelpScreen
from tests.tui.conftest import PlanFactory


async def test_number_keys_move_between_the_screens_and_q_stops_the_lab(
    make_plan: PlanFactory,
) -> None:
    app = SimlabApp(make_plan())
    async with app.run_test(size=(80, 24)) as pilot:
        lab = await app.wait_ready()
        await pilot.pause()
        assert app.current_mode == "plant"  # no workspace: the plant first
        for key, mode in zip(
            "13456", ["exercises", "opcua", "modbus", "mqtt", "platform"], strict=True
        ):
            await pilot.press(key)
            assert app.current_mode == mode
        await pilot.press("7")  # the instructor's screen is hidden from apprentices
        assert app.current_mode == "platform"
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_value == 0
    assert lab.endpoints is None and lab.it is None  # stopped, sockets closed


async def test_the_instructor_sees_the_faults_screen(make_plan: PlanFactory) -> None:
    app = SimlabApp(make_plan(instructor=True))
    async with app.run_test(size=(80, 24)) as pilot:
        await app.wait_ready()
        await pilot.press("7")
        assert app.current_mode == "instructor"
        await pilot.press("q")


async def test_a_lab_that_cannot_start_says_why_and_quits(make_plan: PlanFactory) -> None:
    app = SimlabApp(make_plan(broker="mqtt://127.0.0.1:1"))  # nothing listens on port 1
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(200):
            await pilot.pause(0.05)
            if app.lab_error is not None:
                break
        assert app.lab_error is not None and "127.0.0.1:1" in app.lab_error
        await pilot.press("q")
    assert app.return_value == 0


async def test_the_command_palette_opens_screens_and_the_shown_tools_actions(
    make_plan: PlanFactory,
) -> None:
    app = SimlabApp(make_plan(instructor=True))
    async with app.run_test(size=(80, 24)) as pilot:
        await app.wait_ready()
        await pilot.press("7")
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert "Open Modbus" in titles and "Inject" in titles
        await pilot.press("ctrl+p")
        await pilot.press(*"open modbus")
        await pilot.press("enter")
        await pilot.pause()
        assert app.current_mode == "modbus"
        await pilot.press("q")
