"""The ``simlab`` command line.

Every user mistake surfaces as a :class:`SimlabError` and is printed as a clear message
with exit status 1 (2 for a wrong command line, as argparse does); no traceback reaches
the user for bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from simlab import __version__
from simlab.clock import RealTimeClock, VirtualClock
from simlab.course_cli import add_course_commands, run_course_command
from simlab.errors import ScenarioError, SimlabError
from simlab.scenario import bundled_scenarios, json_schema, load_scenario
from simlab.scenario.checks import did_you_mean
from simlab.scenario.devices import TagSpec
from simlab.scenario.model import Scenario

if TYPE_CHECKING:  # the commands import what they use: `simlab` must paint its UI fast
    from grading.workspace import Workspace
    from simlab.lab import Lab
    from simlab.tui import LabPlan

__all__ = ["main"]

DEFAULT_SCENARIO = "water-tank"
DEFAULT_API_PORT = 8080

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simlab",
        description="A training-base lab for the industrial internet: a simulated plant, "
        "PLCs and sensors, graded exercises.",
    )
    parser.add_argument("--version", action="version", version=f"simlab {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    up = commands.add_parser("up", help="run a lab (the default scenario: water-tank)")
    up.add_argument(
        "scenario",
        nargs="?",
        default=DEFAULT_SCENARIO,
        help="bundled scenario name or path to a scenario.yaml",
    )
    up.add_argument(
        "--headless", action="store_true", help="no terminal UI: print a summary and a heartbeat"
    )
    up.add_argument(
        "--duration", type=float, help="stop after this many simulated seconds (headless)"
    )
    up.add_argument(
        "--virtual",
        action="store_true",
        help="virtual clock: run as fast as possible (headless; needs --duration)",
    )
    up.add_argument(
        "--every",
        type=float,
        default=1.0,
        help="simulated seconds between heartbeat lines (default 1)",
    )
    up.add_argument(
        "--no-endpoints",
        action="store_true",
        help="simulate only: start no OPC UA or Modbus servers",
    )
    _add_lab_options(up)

    tui = commands.add_parser(
        "tui",
        help="the terminal UI (also 'simlab' alone): your workspace's exercise, or a scenario",
    )
    tui.add_argument(
        "scenario",
        nargs="?",
        help="bundled scenario name or path (default: the workspace's exercise, else "
        f"{DEFAULT_SCENARIO})",
    )
    tui.add_argument(
        "--exercise",
        metavar="EXERCISE",
        help="open this exercise of your workspace (id, folder or number)",
    )
    tui.add_argument(
        "--instructor", action="store_true", help="show the Instructor screen (live faults)"
    )
    _add_lab_options(tui)

    registers = commands.add_parser(
        "registers", help="print a device's Modbus register map (the apprentice's handout)"
    )
    registers.add_argument("device", help="device name, e.g. plc1")
    registers.add_argument(
        "--scenario",
        default=DEFAULT_SCENARIO,
        help="bundled scenario name or path (default water-tank)",
    )
    registers.add_argument("--csv", action="store_true", help="CSV instead of a table")

    validate = commands.add_parser(
        "validate", help="check scenario files; exit 1 if any is invalid"
    )
    validate.add_argument("files", nargs="+", metavar="FILE")

    commands.add_parser("schema", help="print the JSON Schema of scenario files")
    commands.add_parser("scenarios", help="list the bundled scenarios")
    add_course_commands(commands)
    return parser


def _add_lab_options(parser: argparse.ArgumentParser) -> None:
    """The options of a running lab, shared by ``up`` and ``tui``."""
    parser.add_argument("--seed", type=int, help="override the scenario's seed")
    parser.add_argument("--speed", type=float, help="simulated seconds per wall second (default 1)")
    parser.add_argument(
        "--port-offset",
        type=int,
        default=0,
        metavar="N",
        help="add N to every endpoint port of the scenario",
    )
    parser.add_argument(
        "--ports",
        choices=("scenario", "auto"),
        default="scenario",
        help="'auto': free ports chosen by the system (see the endpoint map)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address the endpoints listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        help="where certificates and the endpoint map go "
        "(default ~/.local/state/simlab/<scenario>)",
    )

    parser.add_argument(
        "--broker",
        default="auto",
        help="MQTT broker: 'auto' (one answering at mqtt://127.0.0.1:1883, else embedded), "
        "'embedded', or a URL like mqtt://user:pass@host:1883 (default auto)",
    )
    parser.add_argument(
        "--no-bus", action="store_true", help="no MQTT bus, platform, gateway or MQTT sensors"
    )
    parser.add_argument(
        "--api-host",
        default="127.0.0.1",
        help="address the platform API listens on (default 127.0.0.1)",
    )
    parser.add_argument(
        "--api-port",
        type=int,
        help=f"platform API port (default {DEFAULT_API_PORT} + --port-offset; "
        "free with --ports auto)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``simlab`` console script."""
    args = _parser().parse_args(argv)
    try:
        match args.command:
            case "up":
                return _up(args)
            case "tui":
                return _tui(args)
            case None if _in_terminal():
                return _tui(_parser().parse_args(["tui"]))
            case "validate":
                return _validate(args.files)
            case "schema":
                out.print(json_schema(), markup=False, soft_wrap=True)
                return 0
            case "scenarios":
                return _scenarios()
            case "registers":
                return _registers(args)
            case _ if (code := run_course_command(args)) is not None:
                return code
            case _:
                _parser().print_help()
                return 0
    except ScenarioError as error:  # its problems already read "file:line: error: ..."
        err.print(str(error), markup=False, soft_wrap=True)
        return 1
    except SimlabError as error:
        err.print(f"error: {error}", markup=False, soft_wrap=True)
        return 1


def _validate(files: list[str]) -> int:
    failed = 0
    for name in files:
        path = Path(name)
        if not path.is_file():
            err.print(f"{name}: error: no such file", soft_wrap=True, markup=False)
            failed += 1
            continue
        try:
            load_scenario(path)
        except ScenarioError as error:
            failed += 1
            err.print(str(error), soft_wrap=True, markup=False)
            count = len(error.problems)
            err.print(f"{name}: {count} problem{'s' if count != 1 else ''}", markup=False)
        else:
            out.print(f"{name}: ok", markup=False)
    return 1 if failed else 0


def _scenarios() -> int:
    for name, path in bundled_scenarios().items():
        scenario = load_scenario(path)
        out.print(f"[bold]{name:16}[/] {scenario.title}")
    return 0


def _up(args: argparse.Namespace) -> int:
    from simlab.lab import Lab
    from simlab.summary import summary

    headless = args.headless or args.virtual or args.duration is not None or args.no_endpoints
    if not headless and _in_terminal():
        return _tui(args)
    scenario = load_scenario(args.scenario)
    if args.virtual and args.duration is None:
        raise SimlabError("--virtual runs as fast as possible, so it needs --duration SECONDS")
    if args.speed is not None and args.speed <= 0:
        raise SimlabError(f"--speed must be positive, got {args.speed}")
    speed = args.speed if args.speed is not None else scenario.clock.speed
    clock = VirtualClock(scenario.epoch) if args.virtual else RealTimeClock(speed, scenario.epoch)
    lab = Lab(
        scenario,
        clock=clock,
        seed=args.seed,
        serve=not args.no_endpoints,
        host=args.host,
        port_offset=args.port_offset,
        auto_ports=args.ports == "auto",
        state_dir=args.state_dir,
        broker=None if args.no_bus else args.broker,
        api_host=args.api_host,
        api_port=_api_port(args),
    )
    out.print(summary(lab))
    return asyncio.run(_run(lab, args))


async def _run(lab: Lab, args: argparse.Namespace) -> int:
    from simlab.summary import endpoint_table, heartbeat

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    watch = list(lab.scenario.watch)
    async with lab:
        if lab.endpoints is not None or lab.it is not None:
            out.print(endpoint_table(lab))
            out.print(f"endpoint map: {lab.endpoint_map_path}", markup=False)
        out.print(f"lab running{' (virtual clock)' if args.virtual else ''} — Ctrl-C to stop")
        next_beat, printed_at = 0.0, -1.0
        while not stop.is_set():
            if args.duration is not None and lab.time >= args.duration:
                break
            if lab.time >= next_beat:
                out.print(heartbeat(lab, watch), markup=False, soft_wrap=True)
                next_beat, printed_at = next_beat + args.every, lab.time
            if args.virtual:
                await lab.run_until(min(next_beat, args.duration))
            else:
                await _wait(stop, 0.05)
        if lab.time != printed_at:  # the final state, unless just printed
            out.print(heartbeat(lab, watch), markup=False, soft_wrap=True)
    out.print(f"lab stopped at t={lab.time:.1f} s")
    return 0


def _in_terminal() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _tui(args: argparse.Namespace) -> int:
    """The terminal UI on the workspace's exercise (``tui``, ``simlab`` alone) or on a
    scenario (``up``, ``tui SCENARIO``)."""
    from simlab.tui import SimlabApp  # textual loads only for the UI

    code = SimlabApp(_tui_plan(args)).run()
    return code or 0


def _tui_plan(args: argparse.Namespace) -> LabPlan:
    from grading.workspace import WorkspaceError, find_workspace
    from simlab.tui import ExerciseContext, LabPlan

    if args.speed is not None and args.speed <= 0:
        raise SimlabError(f"--speed must be positive, got {args.speed}")
    options: dict[str, Any] = {
        "seed": args.seed,
        "speed": args.speed,
        "host": args.host,
        "port_offset": args.port_offset,
        "auto_ports": args.ports == "auto",
        "broker": None if args.no_bus else args.broker,
        "api_host": args.api_host,
        "api_port": _api_port(args),
        "instructor": getattr(args, "instructor", False),
    }
    if args.state_dir is not None:
        options["state_dir"] = args.state_dir
    if args.command == "up":
        return LabPlan(load_scenario(args.scenario), **options)
    try:
        workspace: Workspace | None = find_workspace(Path.cwd())
    except WorkspaceError:
        workspace = None
    if args.exercise is not None or (workspace is not None and args.scenario is None):
        if workspace is None:
            raise SimlabError(
                "--exercise opens an exercise of your workspace, and there is none here: "
                "make one with 'simlab init DIR', then run simlab inside it"
            )
        entry = workspace.choose(args.exercise, Path.cwd()) or workspace.entries[0]
        return LabPlan.for_exercise(ExerciseContext.of(workspace, entry), **options)
    scenario = load_scenario(args.scenario or DEFAULT_SCENARIO)
    return LabPlan(scenario, workspace=workspace, **options)


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)


def _api_port(args: argparse.Namespace) -> int:
    if args.api_port is not None:
        return int(args.api_port)
    return 0 if args.ports == "auto" else DEFAULT_API_PORT + args.port_offset


def _registers(args: argparse.Namespace) -> int:
    from devices.registermap import register_map
    from simlab.summary import register_csv, register_table

    scenario = load_scenario(args.scenario)
    devices = {d.name: d for d in scenario.devices}
    if args.device not in devices:
        guess = did_you_mean(args.device, devices)
        raise SimlabError(
            f"no device {args.device!r} in {scenario.name}. {guess} Devices: {', '.join(devices)}"
        )
    device = devices[args.device]
    if device.modbus is None:
        raise SimlabError(f"device {args.device!r} has no Modbus server in {scenario.name}")
    units = {tag.name: _tag_unit(scenario, tag) for tag in device.tags}
    rows = register_map(device, units=units)
    if args.csv:
        sys.stdout.write(register_csv(rows))  # raw: a console would wrap long lines
    else:
        out.print(register_table(device, rows))
    return 0


def _tag_unit(scenario: Scenario, tag: TagSpec) -> str:
    """A tag's unit as the handout shows it: declared, else its plant signal's."""
    ref = tag.signal or tag.drives
    if tag.unit is not None or ref is None:
        return tag.unit or ""
    return scenario.plant.signal_catalogue()[ref].unit


if __name__ == "__main__":
    sys.exit(main())
