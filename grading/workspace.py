"""An apprentice's workspace: the course's exercises to work on, with their own variant.

``simlab init DIR`` makes::

    DIR/
      simlab-workspace.json     who works here, with which course and course secret
      01-modbus-float/
        README.md               the brief, rendered with the apprentice's variant values
        read.py                 the starter files (flat: starter/read.py -> read.py)
      02-.../
      .simlab/
        progress.json           per exercise: status, best score, hints used, last check
        state/<exercise id>/    the lab's state of the last check (endpoint map, keys, ...)

``simlab-workspace.json`` (written with mode 0600: it holds the course secret)::

    {"kind": "simlab.workspace", "format_version": 1, "apprentice": "ann",
     "course": {"id": "simlab-iiot", "root": "/abs/path/to/exercises"},
     "secret": {"source": "env", "value": "..."}, "created": "2026-01-05T08:00:00+00:00"}

The course secret (see :mod:`grading.variants`) decides every variant. It comes from
``--secret``, else ``$SIMLAB_COURSE_SECRET`` (a class: the instructor hands it out, so the
apprentice's variants are the ones ``simlab grade`` uses), else a random one is generated
for this workspace alone (self-study: the variants are the apprentice's own, and only this
workspace can reproduce them). It is stored, so later commands need no environment.

``.simlab/progress.json``::

    {"kind": "simlab.progress", "format_version": 1,
     "exercises": {"modbus-float": {"status": "failed", "best_score": 4.0,
                   "max_score": 10.0, "last_score": 4.0, "hints_used": 1,
                   "attempts": 3, "last_check": "2026-01-05T08:12:00+00:00"}}}

``status`` is ``todo`` (never checked), ``failed`` or ``passed``; ``passed`` stays once
earned, like ``best_score`` (a later broken attempt does not take it away).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from grading.batch import find_entry as _find_entry
from grading.manifest import (
    BRIEF,
    Exercise,
    Manifest,
    ManifestEntry,
    ManifestError,
    load_exercise,
    load_manifest,
)
from grading.model import ExerciseResult, GradingError
from grading.runner import exercise_variant
from grading.variants import VariantError, render_brief

__all__ = [
    "COURSE_ENV",
    "PROGRESS_FILE",
    "SECRET_ENV",
    "WORKSPACE_FILE",
    "ExerciseProgress",
    "Hint",
    "Workspace",
    "WorkspaceError",
    "default_course_root",
    "find_entry",
    "find_workspace",
    "init_workspace",
    "place_files",
    "render_hint",
    "resolve_secret",
]

WORKSPACE_FILE = "simlab-workspace.json"
STATE_FOLDER = ".simlab"
PROGRESS_FILE = f"{STATE_FOLDER}/progress.json"
SECRET_ENV = "SIMLAB_COURSE_SECRET"
COURSE_ENV = "SIMLAB_COURSE"
FORMAT_VERSION = 1
_WORKSPACE_KIND = "simlab.workspace"
_PROGRESS_KIND = "simlab.progress"
_APPRENTICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")

Status = Literal["todo", "failed", "passed"]
SecretSource = Literal["flag", "env", "generated"]


class WorkspaceError(GradingError):
    """A workspace that cannot be made or used: not found, damaged, not empty, bad name."""


# --- where things come from ------------------------------------------------------------


def default_course_root() -> Path:
    """The course: ``$SIMLAB_COURSE``, else the ``exercises/`` folder of this checkout."""
    configured = os.environ.get(COURSE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path(__file__).resolve().parents[1] / "exercises"


def resolve_secret(given: str | None) -> tuple[str, SecretSource]:
    """The course secret and where it came from: ``given`` (``--secret``), else
    ``$SIMLAB_COURSE_SECRET``, else a new random one (self-study)."""
    if given:
        return given, "flag"
    from_env = os.environ.get(SECRET_ENV, "")
    if from_env:
        return from_env, "env"
    return secrets.token_urlsafe(32), "generated"


def check_apprentice_id(apprentice: str) -> str:
    """``apprentice`` if it is a valid id (as in a roster); :class:`WorkspaceError` if not."""
    if not _APPRENTICE_ID.match(apprentice):
        raise WorkspaceError(
            f"apprentice id {apprentice!r} cannot be used: ids are letters, digits, '.', '_', "
            f"'-' and '@', starting with a letter or digit (give one with --apprentice)"
        )
    return apprentice


def find_entry(manifest: Manifest, name: str) -> ManifestEntry:
    """The entry whose id or folder is ``name``, or the ``name``-th (1-based) exercise."""
    try:
        return _find_entry(manifest, name)
    except GradingError as err:
        raise WorkspaceError(str(err)) from None


# --- files -----------------------------------------------------------------------------


TEMPLATE_SUFFIXES = (".yaml", ".yml", ".json")


def place_files(
    folder: Path,
    names: Sequence[str],
    target: Path,
    variant: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Copy ``folder/<name>`` for each of ``names`` into ``target`` flat (``starter/read.py``
    becomes ``target/read.py``), as the runner expects a submission; returns the copies.

    With ``variant``, YAML and JSON files are rendered with it like the brief: reference
    answers that depend on the variant are written as templates (``"{{ drift_tag }}"``)."""
    target.mkdir(parents=True, exist_ok=True)
    placed: dict[str, str] = {}
    copies: list[Path] = []
    for name in names:
        base = PurePosixPath(name).name
        if base in placed:
            raise WorkspaceError(
                f"{folder}: {name!r} and {placed[base]!r} would both become {base!r} in the "
                f"apprentice's folder; give them different file names"
            )
        placed[base] = name
        destination = target / base
        source = folder / name
        if variant is not None and source.suffix in TEMPLATE_SUFFIXES:
            text = source.read_text(encoding="utf-8")
            try:
                text = render_brief(text, variant, str(source))
            except VariantError as err:
                raise WorkspaceError(f"{source} cannot be rendered: {err}") from None
            destination.write_text(text, encoding="utf-8")
        else:
            shutil.copyfile(source, destination)
        copies.append(destination)
    return copies


def render_hint(exercise: Exercise, index: int, variant: Mapping[str, Any]) -> str:
    """Hint ``index`` (0-based) rendered with the variant (as written if it cannot be)."""
    text = exercise.hints[index]
    with contextlib.suppress(VariantError):
        text = render_brief(text, variant, f"{exercise.id}: hints[{index}]")
    return text


def _write_json(path: Path, data: Mapping[str, Any], *, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if private:
        temporary.chmod(0o600)
    temporary.replace(path)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WorkspaceError(f"{path}: the {what} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WorkspaceError(f"{path}: the {what} cannot be read: {err}") from None
    if not isinstance(data, dict):
        raise WorkspaceError(f"{path}: the {what} is damaged (not a JSON object)")
    return data


# --- progress --------------------------------------------------------------------------


@dataclass
class ExerciseProgress:
    """How far the apprentice got with one exercise (see the module docstring)."""

    status: Status = "todo"
    best_score: float | None = None
    max_score: float | None = None
    last_score: float | None = None
    hints_used: int = 0
    attempts: int = 0
    last_check: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExerciseProgress:
        """Read the JSON form (unknown fields are ignored; a damaged value is reset)."""
        status = data.get("status", "todo")
        return cls(
            status=status if status in ("todo", "failed", "passed") else "todo",
            best_score=_number_or_none(data.get("best_score")),
            max_score=_number_or_none(data.get("max_score")),
            last_score=_number_or_none(data.get("last_score")),
            hints_used=max(0, int(_number_or_none(data.get("hints_used")) or 0)),
            attempts=max(0, int(_number_or_none(data.get("attempts")) or 0)),
            last_check=data.get("last_check") if isinstance(data.get("last_check"), str) else None,
        )

    def record(self, result: ExerciseResult, when: datetime) -> None:
        """Take in a check's result."""
        self.attempts += 1
        self.last_score = float(result.score)
        self.max_score = float(result.max_score)
        self.best_score = max(self.best_score or 0.0, self.last_score)
        self.status = "passed" if result.passed or self.status == "passed" else "failed"
        self.last_check = when.isoformat(timespec="seconds")


def _number_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@dataclass(frozen=True)
class Hint:
    """A rung of an exercise's hint ladder: ``rung`` of ``total`` (1-based)."""

    rung: int
    total: int
    text: str
    new: bool


# --- the workspace ---------------------------------------------------------------------


@dataclass(frozen=True)
class Workspace:
    """A workspace on disk (see the module docstring)."""

    root: Path
    apprentice: str
    course_secret: str
    secret_source: SecretSource
    course_root: Path
    created: str

    # --- reading ---------------------------------------------------------------------

    @classmethod
    def load(cls, root: Path) -> Workspace:
        """The workspace at ``root``; :class:`WorkspaceError` when it is missing or damaged."""
        path = root / WORKSPACE_FILE
        data = _read_json(path, "workspace file")
        try:
            if data.get("kind") != _WORKSPACE_KIND or data.get("format_version") != 1:
                raise KeyError("kind/format_version")
            secret = data["secret"]
            return cls(
                root=root.resolve(),
                apprentice=check_apprentice_id(str(data["apprentice"])),
                course_secret=str(secret["value"]),
                secret_source=secret.get("source", "flag"),
                course_root=Path(data["course"]["root"]),
                created=str(data.get("created", "")),
            )
        except (KeyError, TypeError) as err:
            raise WorkspaceError(
                f"{path}: the workspace file is damaged ({err} is wrong or missing); "
                f"make a new workspace with 'simlab init'"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of ``simlab-workspace.json``."""
        return {
            "kind": _WORKSPACE_KIND,
            "format_version": FORMAT_VERSION,
            "apprentice": self.apprentice,
            "course": {"id": self.manifest.course.id, "root": str(self.course_root)},
            "secret": {"source": self.secret_source, "value": self.course_secret},
            "created": self.created,
        }

    @cached_property
    def manifest(self) -> Manifest:
        """The course's manifest."""
        try:
            return load_manifest(self.course_root)
        except ManifestError as err:
            raise WorkspaceError(
                f"the course of this workspace ({self.course_root}) cannot be read:\n{err}"
            ) from None

    @property
    def entries(self) -> list[ManifestEntry]:
        """The course's exercises, in order."""
        return list(self.manifest.exercises)

    def entry(self, name: str) -> ManifestEntry:
        """The exercise named by id, folder or number."""
        return find_entry(self.manifest, name)

    def exercise(self, entry: ManifestEntry) -> Exercise:
        """The exercise definition from the course."""
        try:
            return load_exercise(self.manifest.root / entry.folder)
        except ManifestError as err:
            raise WorkspaceError(f"exercise {entry.id!r} cannot be loaded:\n{err}") from None

    def folder(self, entry: ManifestEntry) -> Path:
        """The apprentice's folder of an exercise."""
        return self.root / PurePosixPath(entry.folder).name

    def state_dir(self, entry: ManifestEntry) -> Path:
        """Where the lab of a check keeps its state."""
        return self.root / STATE_FOLDER / "state" / entry.id

    def variant(self, exercise: Exercise) -> dict[str, Any]:
        """The apprentice's variant values of ``exercise``."""
        return exercise_variant(exercise, self.apprentice, self.course_secret)[1]

    # --- progress --------------------------------------------------------------------

    @property
    def progress_path(self) -> Path:
        return self.root / PROGRESS_FILE

    def progress(self) -> dict[str, ExerciseProgress]:
        """Exercise id → progress, for every exercise of the course."""
        stored: Mapping[str, Any] = {}
        if self.progress_path.is_file():
            data = _read_json(self.progress_path, "progress file")
            exercises = data.get("exercises")
            stored = exercises if isinstance(exercises, dict) else {}
        return {
            e.id: ExerciseProgress.from_dict(stored[e.id])
            if isinstance(stored.get(e.id), dict)
            else ExerciseProgress()
            for e in self.entries
        }

    def save_progress(self, progress: Mapping[str, ExerciseProgress]) -> None:
        """Write ``.simlab/progress.json``."""
        _write_json(
            self.progress_path,
            {
                "kind": _PROGRESS_KIND,
                "format_version": FORMAT_VERSION,
                "exercises": {k: asdict(v) for k, v in progress.items()},
            },
        )

    def record_check(self, entry: ManifestEntry, result: ExerciseResult) -> ExerciseProgress:
        """Record a check's result; returns the exercise's new progress."""
        progress = self.progress()
        mine = progress[entry.id]
        mine.record(result, datetime.now(UTC))
        self.save_progress(progress)
        return mine

    # --- choosing an exercise --------------------------------------------------------

    def first_open(self) -> ManifestEntry | None:
        """The first exercise not passed yet (None when all are)."""
        progress = self.progress()
        return next((e for e in self.entries if progress[e.id].status != "passed"), None)

    def entry_at(self, path: Path) -> ManifestEntry | None:
        """The exercise whose folder holds ``path`` (None outside every exercise folder)."""
        resolved = path.resolve()
        for entry in self.entries:
            folder = self.folder(entry)
            if resolved == folder or folder in resolved.parents:
                return entry
        return None

    def choose(self, name: str | None, cwd: Path | None = None) -> ManifestEntry | None:
        """``name``; else the exercise ``cwd`` is in; else the first not passed."""
        if name:
            return self.entry(name)
        here = self.entry_at(cwd) if cwd is not None else None
        return here or self.first_open()

    # --- hints -----------------------------------------------------------------------

    def take_hint(self, entry: ManifestEntry) -> Hint:
        """The next rung of the ladder, recorded as used; the last rung again (``new`` False)
        once all are used."""
        exercise = self.exercise(entry)
        progress = self.progress()
        mine = progress[entry.id]
        total = len(exercise.hints)
        new = mine.hints_used < total
        index = mine.hints_used if new else total - 1
        if new:
            mine.hints_used += 1
            self.save_progress(progress)
        return Hint(index + 1, total, render_hint(exercise, index, self.variant(exercise)), new)

    def current_hint(self, entry: ManifestEntry) -> Hint:
        """The rung the apprentice has reached, for a failed check: the last one taken, or
        the first (then recorded as used) when none was taken yet."""
        exercise = self.exercise(entry)
        progress = self.progress()
        mine = progress[entry.id]
        new = mine.hints_used == 0
        if new:
            mine.hints_used = 1
            self.save_progress(progress)
        index = min(mine.hints_used, len(exercise.hints)) - 1
        text = render_hint(exercise, index, self.variant(exercise))
        return Hint(index + 1, len(exercise.hints), text, new)

    # --- files -----------------------------------------------------------------------

    def write_exercise(self, entry: ManifestEntry, exercise: Exercise) -> list[Path]:
        """Write the rendered brief and the starter files of one exercise; returns them."""
        folder = self.folder(entry)
        folder.mkdir(parents=True, exist_ok=True)
        written = place_files(exercise.folder, exercise.starter, folder)
        if exercise.brief_path.is_file():
            try:
                brief = render_brief(
                    exercise.brief_path.read_text(encoding="utf-8"),
                    self.variant(exercise),
                    str(exercise.brief_path),
                )
            except VariantError as err:
                raise WorkspaceError(
                    f"the brief of {entry.id!r} cannot be rendered: {err}"
                ) from None
            (folder / BRIEF).write_text(brief, encoding="utf-8")
            written.append(folder / BRIEF)
        return written

    def reset(self, entry: ManifestEntry) -> list[Path]:
        """Put the starter files (and the brief) of an exercise back; other files stay.
        Progress is kept. Returns the files restored."""
        return self.write_exercise(entry, self.exercise(entry))


# --- making and finding workspaces -----------------------------------------------------


def init_workspace(
    target: Path,
    *,
    course_root: Path,
    apprentice: str,
    secret: str | None = None,
    force: bool = False,
) -> Workspace:
    """Make a workspace in ``target`` (created if needed) for ``course_root``.

    Refuses a non-empty ``target`` unless ``force`` (then starter files, briefs, the
    workspace file and the progress are overwritten; other files stay). Every exercise must
    load, else nothing is written and :class:`WorkspaceError` lists the problems.
    """
    check_apprentice_id(apprentice)
    if target.exists() and not target.is_dir():
        raise WorkspaceError(f"{target} is a file, not a folder: choose another place")
    if target.is_dir() and not force:
        present = sorted(p.name for p in target.iterdir())
        if present:
            shown = ", ".join(present[:3]) + (", ..." if len(present) > 3 else "")
            raise WorkspaceError(
                f"{target} is not empty ({shown}): choose a new or empty folder, or pass --force "
                f"to write the exercises into it (starter files and briefs with the same names "
                f"are overwritten, your other files stay)"
            )
    try:
        manifest = load_manifest(course_root)
    except ManifestError as err:
        raise WorkspaceError(f"the course at {course_root} cannot be read:\n{err}") from None
    exercises: list[tuple[ManifestEntry, Exercise]] = []
    problems: list[str] = []
    for entry in manifest.exercises:
        try:
            exercises.append((entry, load_exercise(manifest.root / entry.folder)))
        except ManifestError as err:
            problems.append(f"{entry.id}: {err}")
    if problems:
        raise WorkspaceError(
            "the course has exercises that cannot be loaded (see 'simlab lint'):\n"
            + "\n".join(problems)
        )
    value, source = resolve_secret(secret)
    target.mkdir(parents=True, exist_ok=True)
    workspace = Workspace(
        root=target.resolve(),
        apprentice=apprentice,
        course_secret=value,
        secret_source=source,
        course_root=manifest.root.resolve(),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    for entry, exercise in exercises:
        workspace.write_exercise(entry, exercise)
    _write_json(target / WORKSPACE_FILE, workspace.to_dict(), private=True)
    workspace.save_progress({e.id: ExerciseProgress() for e, _ in exercises})
    return workspace


def find_workspace(start: Path) -> Workspace:
    """The workspace holding ``start`` (searching it and its parents)."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / WORKSPACE_FILE).is_file():
            return Workspace.load(folder)
    raise WorkspaceError(
        f"no simlab workspace in {start} or above it (no {WORKSPACE_FILE}): "
        f"make one with 'simlab init DIR', then cd into it"
    )
