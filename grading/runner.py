"""Run one exercise for one submission: a lab of its own, the program, the checks.

The lab is the exercise's scenario with the apprentice's variant, on a real-time clock (at
the scenario's ``clock.speed``), with every endpoint on free ports, an embedded MQTT broker
(so labs running side by side never share topics), the platform and a bus recorder. A
``program`` submission runs as a subprocess with the lab's addresses in environment
variables (ports differ between labs):

========================  =========================================================
``SIMLAB_DEVICE``         the exercise's main device (the first with an endpoint)
``SIMLAB_MODBUS_HOST``    Modbus TCP host of that device
``SIMLAB_MODBUS_PORT``    its port
``SIMLAB_MODBUS_UNIT``    its first unit id
``SIMLAB_OPCUA_URL``      OPC UA endpoint URL of that device
``SIMLAB_OPCUA_NAMESPACE`` the namespace URI of its nodes
``SIMLAB_MQTT_URL``       the lab's broker, ``mqtt://127.0.0.1:<port>``
``SIMLAB_API_URL``        the platform API
``SIMLAB_API_TOKEN``      its bearer token
``SIMLAB_ENDPOINTS``      the endpoint map (JSON file)
``SIMLAB_VARIANT``        the apprentice's variant values (JSON file)
``SIMLAB_ANSWERS``        where the program may write its answers (JSON file)
========================  =========================================================

Time limits are **lab time**: a lab at clock speed 4 reaches a 120 s limit after 30 wall
seconds (:mod:`grading.horizon` plans each run). A program still running at the time limit
is stopped (SIGTERM, then SIGKILL): services such as gateways are meant to be stopped that
way; the lab then settles and, when a check reads the truth over a window that ends later,
runs on to its end. Other modes run until the evidence their checks need is complete
(the time limit when a check looks at the whole run): ``answers`` reads ``answers.yaml``
(or ``.json``) from the submission, ``rules`` makes the submission's ``rules.yaml`` the
platform's rules file, ``tool`` grades what the lab observed from outside tools in the
whole window. ``hold=True`` (``simlab check``: the apprentice investigates the lab with
their own tools) keeps every lab up for the whole limit. An ``answers`` exercise whose
checks only read the truth runs on a virtual clock unless held: the same plant, at CPU
speed. Whatever happens, the result says so: a crash, a timeout or a broken check never
escapes as an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from grading.checks import render_title, run_check
from grading.evidence import Evidence, EvidenceError, PlatformEvidence, ProgramRun, read_answers
from grading.horizon import RunPlan, plan_run
from grading.manifest import MANIFEST_FILE, Exercise, ManifestError, build_scenario, load_manifest
from grading.model import CheckResult, ExerciseResult, GradingError
from grading.variants import draw_variant, variant_seed
from simlab.bus.recorder import BusRecorder
from simlab.clock import RealTimeClock
from simlab.errors import SimlabError
from simlab.lab import Lab

__all__ = [
    "ANSWER_FILES",
    "RunLimits",
    "clock_speed",
    "exercise_time_limit",
    "exercise_variant",
    "lab_environment",
    "run_exercise",
]

ANSWER_FILES = ("answers.yaml", "answers.yml", "answers.json")
SETTLE_S = 2.0  # wall seconds the lab runs on after the program ends (or the evidence) at most
QUIET_S = 0.5  # ... or until the bus has been this quiet: the program's last messages are in
POLL_S = 0.25  # wall seconds between looks at whether a run's evidence is complete
KILL_GRACE_S = 2.0
OUTPUT_LIMIT = 64 * 1024  # characters of stdout/stderr kept as evidence


@dataclass(frozen=True)
class RunLimits:
    """Limits of a submission's run: ``time_limit_s`` in lab seconds (batch grading also
    sets a memory limit)."""

    time_limit_s: float
    memory_mb: int | None = None


def exercise_variant(
    exercise: Exercise, apprentice: str, course_secret: str
) -> tuple[int, dict[str, Any]]:
    """The apprentice's variant seed and values for ``exercise``."""
    seed = variant_seed(course_secret, apprentice, exercise.id)
    return seed, draw_variant(exercise.variant, seed)


def exercise_time_limit(exercise: Exercise) -> float:
    """The exercise's time limit in lab seconds: its own ``time_limit_s``, else its entry's
    in the course manifest next to its folder. :class:`GradingError` when neither has one."""
    if exercise.time_limit_s is not None:
        return exercise.time_limit_s
    manifest_path = exercise.folder.parent / MANIFEST_FILE
    if manifest_path.is_file():
        try:
            manifest = load_manifest(manifest_path)
        except ManifestError as err:
            raise GradingError(f"the course manifest cannot be read:\n{err}") from None
        for entry in manifest.exercises:
            if entry.id == exercise.id:
                return entry.time_limit_s
    raise GradingError(
        f"exercise {exercise.id!r} has no time limit: no time_limit_s in its exercise.yaml and "
        f"no entry for it in {manifest_path}"
    )


def clock_speed(exercise: Exercise, variant: Mapping[str, Any] | None = None) -> float:
    """The speed of the exercise's lab clock (lab seconds per wall second), with ``variant``
    (default: the variant of seed 0)."""
    if variant is None:
        variant = draw_variant(exercise.variant, 0)
    return build_scenario(exercise, variant).clock.speed


async def run_exercise(
    exercise: Exercise,
    submission: Path,
    *,
    apprentice: str,
    course_secret: str,
    state_dir: Path,
    time_limit_s: float | None = None,
    memory_mb: int | None = None,
    hold: bool = False,
) -> ExerciseResult:
    """Grade ``submission`` (a folder with the apprentice's files) for ``exercise``.

    ``time_limit_s`` (lab seconds) defaults to :func:`exercise_time_limit`; ``hold`` keeps
    the lab up for the whole limit (someone investigates it), see the module docstring.
    """
    started = datetime.now(UTC)
    submission = submission.resolve()  # the program runs with the submission as its cwd
    seed, variant = exercise_variant(exercise, apprentice, course_secret)
    try:
        limits = RunLimits(time_limit_s or exercise_time_limit(exercise), memory_mb)
        checks, error = await _run(exercise, submission, variant, limits, state_dir, hold=hold)
    except SimlabError as err:  # the exercise itself cannot run: say so, grade nothing
        checks, error = _not_run(exercise, variant, f"the lab could not run: {err}"), str(err)
    return ExerciseResult(
        exercise=exercise.id,
        apprentice=apprentice,
        variant_seed=seed,
        checks=checks,
        started=started,
        finished=datetime.now(UTC),
        error=error,
    )


async def _run(
    exercise: Exercise,
    submission: Path,
    variant: dict[str, Any],
    limits: RunLimits,
    state_dir: Path,
    *,
    hold: bool,
) -> tuple[list[CheckResult], str | None]:
    scenario = build_scenario(exercise, variant)
    plan = plan_run(exercise, scenario, variant, limits.time_limit_s, hold=hold)
    if plan.virtual:
        return await _run_virtual(exercise, submission, Lab(scenario), variant, plan)
    state_dir.mkdir(parents=True, exist_ok=True)
    if exercise.mode == "rules":
        _install_rules(submission, state_dir)
    lab = Lab(
        scenario,
        clock=RealTimeClock(scenario.clock.speed, scenario.epoch),
        serve=True,
        auto_ports=True,
        state_dir=state_dir,
        broker="embedded",
    )
    program: ProgramRun | None = None
    answers: Mapping[str, Any] | None = None
    error: str | None = None
    async with lab:
        assert lab.it is not None and lab.it.broker is not None and lab.it.platform is not None
        async with BusRecorder(lab.it.broker.url, now=lambda: lab.time) as recorder:
            if exercise.mode == "program":
                env = _environment(lab, variant, state_dir)
                program = await _run_program(exercise, submission, env, limits, plan=plan, lab=lab)
                if program.timed_out:
                    error = None  # services are stopped at the limit; checks decide
                elif program.exit_status is None:
                    error = "the program could not start"
                await _settle(recorder)
                await _run_until(lab, plan.reach_s)  # a check's window reaches that far
                answers = _program_answers(state_dir)
            else:
                await _run_passive(lab, plan)
                await asyncio.sleep(SETTLE_S)  # what the last instants sent reaches the platform
                if exercise.mode == "answers":
                    answers, error = _submission_answers(submission)
            await recorder.retained(quiet_s=0.2, timeout=2.0)
            platform = lab.it.platform
            evidence = Evidence.from_lab(
                lab,
                bus=recorder,
                platform=PlatformEvidence(historian=platform.historian, alarms=platform.alarms),
                answers=answers,
                program=program,
            )
            with _exercise_on_path(exercise.folder):
                checks = [run_check(spec, evidence, variant) for spec in exercise.checks]
    return checks, error


async def _run_virtual(
    exercise: Exercise, submission: Path, lab: Lab, variant: dict[str, Any], plan: RunPlan
) -> tuple[list[CheckResult], str | None]:
    """An answers exercise whose checks read only the truth: the lab on its virtual clock,
    no endpoints, no bus, as fast as the CPU steps it."""
    answers, error = _submission_answers(submission)
    async with lab:
        await lab.run_until(plan.end_s)
        evidence = Evidence.from_lab(lab, answers=answers)
        with _exercise_on_path(exercise.folder):
            checks = [run_check(spec, evidence, variant) for spec in exercise.checks]
    return checks, error


async def _settle(recorder: BusRecorder) -> None:
    """Let the lab run on until the bus has been quiet for :data:`QUIET_S` (what the program
    sent last has reached the recorder and the platform, which subscribe to the same
    broker), :data:`SETTLE_S` at most."""
    loop = asyncio.get_running_loop()
    started = since = loop.time()
    heard = -1
    while (now := loop.time()) - started < SETTLE_S:
        count = len(recorder) + recorder.dropped
        if count != heard:
            heard, since = count, now
        elif now - since >= QUIET_S:
            return
        await asyncio.sleep(0.05)


async def _run_passive(lab: Lab, plan: RunPlan) -> None:
    """Let a lab without a program run until its checks' evidence is complete (a held run:
    its whole limit)."""
    platform = lab.it.platform if lab.it is not None else None
    alarms = None if plan.hold or platform is None else platform.alarms
    epoch = lab.clock.epoch.timestamp()
    while lab.time < plan.end_s and not (
        alarms is not None and plan.complete(lab.time, alarms, epoch)
    ):
        await asyncio.sleep(min(POLL_S, max((plan.end_s - lab.time) / plan.speed, 0.01)))


async def _run_until(lab: Lab, sim_time: float) -> None:
    """Let a real-time lab run until its time reaches ``sim_time``."""
    speed = lab.clock.speed if isinstance(lab.clock, RealTimeClock) else 1.0
    while lab.time < sim_time:
        await asyncio.sleep(max((sim_time - lab.time) / speed, 0.01))


def _not_run(exercise: Exercise, variant: Mapping[str, Any], reason: str) -> list[CheckResult]:
    """Every check of ``exercise`` failed with ``reason``, titles rendered with ``variant``."""
    return [
        CheckResult(
            check_id=spec.id,
            title=render_title(spec.title, variant),
            passed=False,
            points=0.0,
            max_points=spec.points,
            message=reason,
            competencies=tuple(spec.competencies),
            gate=spec.gate,
        )
        for spec in exercise.checks
    ]


def _install_rules(submission: Path, state_dir: Path) -> None:
    """The submission's rules file becomes the platform's (a missing one: the starter's)."""
    source = submission / "rules.yaml"
    if source.is_file():
        shutil.copyfile(source, state_dir / "rules.yaml")


def _main_device(lab: Lab) -> str:
    for device in lab.scenario.devices:
        if device.modbus is not None or device.opcua is not None:
            return device.name
    return lab.scenario.devices[0].name if lab.scenario.devices else ""


def lab_environment(lab: Lab, variant_file: Path, answers_file: Path) -> dict[str, str]:
    """The ``SIMLAB_*`` variables that point a program at ``lab`` (see the module
    docstring); the exercise's main device is the first with an endpoint."""
    device = _main_device(lab)
    env = {
        "SIMLAB_DEVICE": device,
        "SIMLAB_ENDPOINTS": str(lab.endpoint_map_path),
        "SIMLAB_VARIANT": str(variant_file),
        "SIMLAB_ANSWERS": str(answers_file),
    }
    for address in lab.addresses():
        if address.device != device:
            continue
        if address.protocol == "modbus":
            env["SIMLAB_MODBUS_HOST"] = address.host
            env["SIMLAB_MODBUS_PORT"] = str(address.port)
            env["SIMLAB_MODBUS_UNIT"] = str(address.unit_ids[0] if address.unit_ids else 1)
        else:
            env["SIMLAB_OPCUA_URL"] = address.url
            spec = next(d for d in lab.scenario.devices if d.name == device)
            if spec.opcua is not None:
                env["SIMLAB_OPCUA_NAMESPACE"] = spec.opcua.namespace
    it = lab.it
    if it is not None and it.broker is not None and it.platform is not None:
        env["SIMLAB_MQTT_URL"] = it.broker.url
        env["SIMLAB_API_URL"] = it.platform.api_url
        env["SIMLAB_API_TOKEN"] = it.platform.token
    return env


def _environment(lab: Lab, variant: Mapping[str, Any], state_dir: Path) -> dict[str, str]:
    """This process's environment with the lab's variables, the variant file written and
    no previous run's answers."""
    answers = state_dir / "answers.json"
    answers.unlink(missing_ok=True)
    variant_path = state_dir / "variant.json"
    variant_path.write_text(json.dumps(dict(variant), default=str), encoding="utf-8")
    return {**os.environ, **lab_environment(lab, variant_path, answers)}


def _program_file(exercise: Exercise, submission: Path) -> Path | None:
    for name in exercise.starter:
        if str(name).endswith(".py"):
            return submission / Path(str(name)).name
    return None


async def _run_program(
    exercise: Exercise,
    submission: Path,
    env: dict[str, str],
    limits: RunLimits,
    *,
    plan: RunPlan,
    lab: Lab,
) -> ProgramRun:
    """Run the submission's program with its limits (stopped after ``plan.wall_limit_s``
    wall seconds, the time limit in lab time); never raises. Its duration is in lab
    seconds, like its limit."""
    main = _program_file(exercise, submission)
    if main is None or not main.is_file():
        expected = main.name if main is not None else "a .py file"
        return ProgramRun(None, stderr=f"no program: {expected} is missing from {submission}")
    started = lab.clock.now()
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(main),
            cwd=submission,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=_limiter(limits.memory_mb),
            start_new_session=True,  # a hostile program's children die with its group
        )
    except OSError as err:
        return ProgramRun(None, stderr=f"cannot start {main}: {err}")
    output = asyncio.ensure_future(process.communicate())  # kept: it holds what was read
    done, _ = await asyncio.wait({output}, timeout=plan.wall_limit_s)
    duration = lab.clock.now() - started
    timed_out = not done
    if timed_out:
        await _stop(process, output)
    stdout, stderr = output.result() if output.done() and not output.cancelled() else (b"", b"")
    return ProgramRun(
        exit_status=None if timed_out else process.returncode,
        stdout=stdout.decode("utf-8", "replace")[-OUTPUT_LIMIT:],
        stderr=stderr.decode("utf-8", "replace")[-OUTPUT_LIMIT:],
        timed_out=timed_out,
        duration_s=duration,
        time_limit_s=limits.time_limit_s,
    )


async def _stop(process: asyncio.subprocess.Process, output: asyncio.Future[Any]) -> None:
    """SIGTERM the program's process group, then SIGKILL after a grace period."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)
        done, _ = await asyncio.wait({output}, timeout=KILL_GRACE_S)
        if done:
            return
    output.cancel()


def _limiter(memory_mb: int | None) -> Any:
    if memory_mb is None:
        return None
    limit = memory_mb * 1024 * 1024

    def apply() -> None:  # runs in the child before exec
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def _program_answers(state_dir: Path) -> Mapping[str, Any] | None:
    path = state_dir / "answers.json"
    if not path.is_file():
        return None
    try:
        return read_answers(path)
    except EvidenceError:
        return None


def _submission_answers(submission: Path) -> tuple[Mapping[str, Any] | None, str | None]:
    for name in ANSWER_FILES:
        path = submission / name
        if path.is_file():
            try:
                return read_answers(path), None
            except EvidenceError as err:
                return None, str(err)
    return None, f"no answers file ({' or '.join(ANSWER_FILES)}) in {submission}"


@contextlib.contextmanager
def _exercise_on_path(folder: Path) -> Iterator[None]:
    """Let ``python:module:function`` checks import modules from the exercise's folder."""
    root = str(folder.resolve())
    sys.path.insert(0, root)
    try:
        yield
    finally:
        sys.path.remove(root)
        for name, module in list(sys.modules.items()):  # the next exercise's "checks" is another
            if str(getattr(module, "__file__", "") or "").startswith(root):
                del sys.modules[name]
