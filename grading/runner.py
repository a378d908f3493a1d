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

A program still running at the time limit is stopped (SIGTERM, then SIGKILL): services
such as gateways are meant to be stopped that way. Other modes let the lab run for the
time limit: ``answers`` reads ``answers.yaml`` (or ``.json``) from the submission,
``rules`` makes the submission's ``rules.yaml`` the platform's rules file, ``tool`` grades
what the lab observed from outside tools in that window. Whatever happens, the result
says so: a crash, a timeout or a broken check never escapes as an exception.
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
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from grading.checks import run_check
from grading.evidence import Evidence, EvidenceError, PlatformEvidence, ProgramRun, read_answers
from grading.manifest import Exercise, build_scenario
from grading.model import CheckResult, ExerciseResult
from grading.variants import draw_variant, variant_seed
from simlab.bus.recorder import BusRecorder
from simlab.clock import RealTimeClock
from simlab.errors import SimlabError
from simlab.lab import Lab

__all__ = ["ANSWER_FILES", "RunLimits", "exercise_variant", "run_exercise"]

ANSWER_FILES = ("answers.yaml", "answers.yml", "answers.json")
SETTLE_S = 2.0  # the lab keeps running this long after the program ends
KILL_GRACE_S = 2.0
OUTPUT_LIMIT = 64 * 1024  # characters of stdout/stderr kept as evidence


@dataclass(frozen=True)
class RunLimits:
    """Limits of a submission's run (batch grading sets a memory limit)."""

    time_limit_s: float
    memory_mb: int | None = None


def exercise_variant(
    exercise: Exercise, apprentice: str, course_secret: str
) -> tuple[int, dict[str, Any]]:
    """The apprentice's variant seed and values for ``exercise``."""
    seed = variant_seed(course_secret, apprentice, exercise.id)
    return seed, draw_variant(exercise.variant, seed)


async def run_exercise(
    exercise: Exercise,
    submission: Path,
    *,
    apprentice: str,
    course_secret: str,
    state_dir: Path,
    time_limit_s: float | None = None,
    memory_mb: int | None = None,
) -> ExerciseResult:
    """Grade ``submission`` (a folder with the apprentice's files) for ``exercise``."""
    started = datetime.now(UTC)
    submission = submission.resolve()  # the program runs with the submission as its cwd
    seed, variant = exercise_variant(exercise, apprentice, course_secret)
    limits = RunLimits(time_limit_s or exercise.time_limit_s or 60.0, memory_mb)
    try:
        checks, error = await _run(exercise, submission, variant, limits, state_dir)
    except SimlabError as err:  # the exercise itself cannot run: say so, grade nothing
        checks, error = _not_run(exercise, f"the lab could not run: {err}"), str(err)
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
) -> tuple[list[CheckResult], str | None]:
    scenario = build_scenario(exercise, variant)
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
                program = await _run_program(exercise, submission, env, limits)
                if program.timed_out:
                    error = None  # services are stopped at the limit; checks decide
                elif program.exit_status is None:
                    error = "the program could not start"
                await asyncio.sleep(SETTLE_S)
                answers = _program_answers(state_dir)
            else:
                await asyncio.sleep(limits.time_limit_s)
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


def _not_run(exercise: Exercise, reason: str) -> list[CheckResult]:
    return [
        CheckResult(
            check_id=spec.id,
            title=spec.title,
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


def _environment(lab: Lab, variant: Mapping[str, Any], state_dir: Path) -> dict[str, str]:
    """The lab's addresses for the apprentice's program (see the module docstring)."""
    device = _main_device(lab)
    env = dict(os.environ)
    (state_dir / "answers.json").unlink(missing_ok=True)  # never a previous run's answers
    variant_path = state_dir / "variant.json"
    variant_path.write_text(json.dumps(dict(variant), default=str), encoding="utf-8")
    env.update(
        SIMLAB_DEVICE=device,
        SIMLAB_ENDPOINTS=str(lab.endpoint_map_path),
        SIMLAB_VARIANT=str(variant_path),
        SIMLAB_ANSWERS=str(state_dir / "answers.json"),
    )
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


def _program_file(exercise: Exercise, submission: Path) -> Path | None:
    for name in exercise.starter:
        if str(name).endswith(".py"):
            return submission / Path(str(name)).name
    return None


async def _run_program(
    exercise: Exercise, submission: Path, env: dict[str, str], limits: RunLimits
) -> ProgramRun:
    """Run the submission's program with its limits; never raises."""
    main = _program_file(exercise, submission)
    if main is None or not main.is_file():
        expected = main.name if main is not None else "a .py file"
        return ProgramRun(None, stderr=f"no program: {expected} is missing from {submission}")
    started = time.monotonic()
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
    done, _ = await asyncio.wait({output}, timeout=limits.time_limit_s)
    timed_out = not done
    if timed_out:
        await _stop(process, output)
    stdout, stderr = output.result() if output.done() and not output.cancelled() else (b"", b"")
    return ProgramRun(
        exit_status=None if timed_out else process.returncode,
        stdout=stdout.decode("utf-8", "replace")[-OUTPUT_LIMIT:],
        stderr=stderr.decode("utf-8", "replace")[-OUTPUT_LIMIT:],
        timed_out=timed_out,
        duration_s=time.monotonic() - started,
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
