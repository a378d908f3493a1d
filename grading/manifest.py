"""The exercise format: one ordered course manifest, one folder per exercise, and its lint.

Layout (like rustlings' ``info.toml``: the manifest's order is the curriculum order)::

    exercises/
      manifest.yaml          format_version, course {id, title}, exercises [...]
      01-modbus-read/
        exercise.yaml        scenario, mode, starter, solution, variant, hints, checks
        README.md            the brief; {{ name }} placeholders take the variant's values
        starter/read.py      what the apprentice starts from
        solution/read.py     the reference solution (must pass, for every variant)

``manifest.yaml``::

    format_version: 1
    course: {id: iiot-basics, title: Industrial internet basics}
    exercises:
      - id: modbus-read
        title: Read the tank level over Modbus
        folder: 01-modbus-read
        competencies: [modbus]
        time_limit_s: 120
        points: 10

``exercise.yaml``::

    id: modbus-read
    title: Read the tank level over Modbus
    scenario:
      base: water-tank                  # a bundled scenario
      overrides:                        # deep-merged into its YAML data before validation
        plant: {units: [{name: tank, initial_level: "{{ level }}"}]}
    mode: program                       # program | tool | answers | rules
    starter: [starter/read.py]
    solution: [solution/read.py]
    variant:
      parameters:
        level: {float: [0.3, 1.2, 0.05]}
        unit_id: {int: [1, 5]}
        topic: {choice: [site/a, site/b]}
    hints: [a nudge, a pointer, nearly the answer]
    checks:
      - id: connects
        type: modbus_client_seen        # a check-library name ...
        title: Your program talks Modbus to PLC1
        points: 0
        gate: true
      - id: level
        type: "python:checks.level:check"   # ... or python:module:function
        title: The level you print matches the true level
        points: 10
        competencies: [modbus]
        params: {tolerance: 0.01, unit_id: "{{ unit_id }}"}
    time_limit_s: 120

Every problem is a :class:`~simlab.errors.Problem` with ``file:line:column``, the field path
and a hint, like scenario files: :func:`load_yaml_model` reads a YAML file into a pydantic
model with the scenario loader's public YAML-with-positions machinery (``read_model``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    PrivateAttr,
    StringConstraints,
)

from grading.model import GradingError
from grading.variants import VariantError, VariantSpec, draw_variant, render_brief, render_value
from simlab.errors import FileProblems, Problem, ScenarioError
from simlab.scenario import Scenario, bundled_scenarios, format_path, parse_scenario
from simlab.scenario.checks import Loc, did_you_mean
from simlab.scenario.loader import Positions, decode_text, problem_at, read_model

__all__ = [
    "BRIEF",
    "EXERCISE_FILE",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "CheckSpec",
    "Competency",
    "CompetencyFramework",
    "Course",
    "Exercise",
    "Manifest",
    "ManifestEntry",
    "ManifestError",
    "ScenarioRef",
    "build_scenario",
    "check_manifest",
    "deep_merge",
    "load_competencies",
    "load_exercise",
    "load_manifest",
    "load_yaml_model",
]

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.yaml"
EXERCISE_FILE = "exercise.yaml"
BRIEF = "README.md"

M = TypeVar("M", bound=BaseModel)


class ManifestError(FileProblems, GradingError):
    """A manifest, exercise or competency file that cannot be used; ``problems`` lists all."""


# --- field types -----------------------------------------------------------------------


class _Spec(BaseModel):
    """Base of the exercise-format models: frozen, unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Ident = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64),
    Field(
        description="lowercase id: letters, digits, '-' and '_', starting with a letter or digit"
    ),
]

Text = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]


def _relative(value: str) -> str:
    path = PurePosixPath(value)
    if not value.strip() or "\\" in value or path.is_absolute() or ".." in path.parts:
        raise ValueError(
            f"{value!r} must be a relative path inside its folder, with '/' separators "
            f"(no leading '/', no '..')"
        )
    return value


RelPath = Annotated[
    str, AfterValidator(_relative), Field(description="a relative path, like 'starter/read.py'")
]

_PYTHON_CHECK = re.compile(r"^python:\s*([A-Za-z_][A-Za-z0-9_.]*):([A-Za-z_][A-Za-z0-9_]*)$")
_LIBRARY_CHECK = re.compile(r"^[a-z][a-z0-9_]*$")


def _check_type(value: str) -> str:
    if not (_LIBRARY_CHECK.match(value) or _PYTHON_CHECK.match(value)):
        raise ValueError(
            f"check type {value!r} is neither a check-library name (lowercase, like "
            f"'modbus_register_equals') nor 'python:package.module:function'"
        )
    return value


CheckType = Annotated[
    str,
    AfterValidator(_check_type),
    Field(description="a check-library name, or 'python:module:function' (quote it in YAML)"),
]


# --- the manifest ----------------------------------------------------------------------


class Course(_Spec):
    """The course a manifest describes."""

    id: Ident
    title: Text


class ManifestEntry(_Spec):
    """One exercise of the curriculum, in order."""

    id: Ident
    title: Text
    folder: RelPath = Field(description="the exercise's folder, relative to the manifest")
    competencies: list[Ident] = Field(
        min_length=1, description="competency ids (grading/competencies.yaml) it trains"
    )
    time_limit_s: PositiveFloat = Field(description="seconds a submission may run")
    points: PositiveInt = Field(description="the exercise's total; its checks' points add up")


class Manifest(_Spec):
    """A course: ``exercises/manifest.yaml``. The list order is the curriculum order."""

    format_version: Literal[1] = Field(description="version of this file format; this is 1")
    course: Course
    exercises: list[ManifestEntry] = Field(min_length=1, description="the exercises, in order")

    _root: Path = PrivateAttr(default=Path())

    @property
    def root(self) -> Path:
        """The folder holding ``manifest.yaml``."""
        return self._root

    def entry(self, exercise_id: str) -> ManifestEntry:
        """The entry of ``exercise_id``; KeyError (with a did-you-mean) when there is none."""
        for entry in self.exercises:
            if entry.id == exercise_id:
                return entry
        guess = did_you_mean(exercise_id, [e.id for e in self.exercises])
        raise KeyError(f"no exercise {exercise_id!r} in course {self.course.id!r}. {guess}")

    def folder_of(self, exercise_id: str) -> Path:
        """The folder of ``exercise_id``."""
        return self.root / self.entry(exercise_id).folder


# --- one exercise ----------------------------------------------------------------------


class ScenarioRef(_Spec):
    """The lab an exercise runs: a bundled scenario and overrides deep-merged into it."""

    base: Text = Field(description="name of a bundled scenario, like 'water-tank'")
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="deep-merged into the scenario's YAML data (see grading.manifest.deep_merge)",
    )


class CheckSpec(_Spec):
    """One graded check of an exercise."""

    id: Ident
    type: CheckType
    title: Text
    points: NonNegativeInt = Field(description="points for passing it (0 for a pure gate)")
    competencies: list[Ident] = Field(default_factory=list, description="competency ids")
    gate: bool = Field(False, description="when it fails, the exercise scores 0")
    params: dict[str, Any] = Field(
        default_factory=dict, description="the check's parameters; may use {{ name }}"
    )

    @property
    def python_target(self) -> tuple[str, str] | None:
        """``(module, function)`` of a ``python:module:function`` check; None for the library."""
        match = _PYTHON_CHECK.match(self.type)
        return (match.group(1), match.group(2)) if match else None


Mode = Literal["program", "tool", "answers", "rules"]


class Exercise(_Spec):
    """One exercise: ``exercise.yaml`` in its folder."""

    id: Ident
    title: Text
    scenario: ScenarioRef
    mode: Mode = Field(
        description="how the apprentice delivers: program (a Python program run as a "
        "subprocess), tool (a time window for outside tools), answers (an answers file), "
        "rules (a rules YAML)"
    )
    starter: list[RelPath] = Field(
        default_factory=list, description="files the apprentice starts from"
    )
    solution: list[RelPath] = Field(min_length=1, description="the reference solution's files")
    variant: VariantSpec = Field(
        default_factory=VariantSpec, description="parameters drawn per apprentice"
    )
    hints: list[Text] = Field(
        min_length=3,
        max_length=3,
        description="exactly three hints: a nudge, a pointer, nearly the answer",
    )
    checks: list[CheckSpec] = Field(min_length=1, description="the graded checks, in order")
    time_limit_s: PositiveFloat | None = Field(
        None, description="seconds a submission may run (default: the manifest's)"
    )

    _folder: Path = PrivateAttr(default=Path())
    _source: str = PrivateAttr(default=EXERCISE_FILE)
    _positions: Positions = PrivateAttr(default_factory=dict)

    @property
    def folder(self) -> Path:
        """The exercise's folder."""
        return self._folder

    @property
    def brief_path(self) -> Path:
        """The Markdown brief, ``README.md`` in the folder."""
        return self._folder / BRIEF

    @property
    def points(self) -> int:
        """The sum of the checks' points."""
        return sum(c.points for c in self.checks)


# --- competencies ----------------------------------------------------------------------


class Competency(_Spec):
    """One competency of the framework."""

    id: Ident
    area: Text = Field(description="the group it belongs to, like 'OT protocols'")
    title: Text
    description: Text


class CompetencyFramework(_Spec):
    """``grading/competencies.yaml``."""

    format_version: Literal[1] = Field(description="version of this file format; this is 1")
    competencies: list[Competency] = Field(min_length=1)


# --- reading YAML into models, with positions ------------------------------------------


def load_yaml_model(path: Path, model: type[M], *, shape: str, start: str) -> tuple[M, Positions]:
    """Read YAML file ``path`` into ``model``, and where each field path is (line, column).

    A thin wrapper over the scenario loader's public ``decode_text`` and ``read_model``:
    :class:`ManifestError` lists every problem (unreadable or non-UTF-8 file, YAML syntax,
    duplicate keys, unknown or missing fields, wrong values) at ``file:line:column`` with
    the field path and a hint. ``shape`` says what the file is, ``start`` how it begins.
    """
    text = decode_text(path, ManifestError)
    return read_model(text, str(path), model, error=ManifestError, shape=shape, start=start)


def _manifest_path(root: Path) -> Path:
    return root if root.is_file() or root.suffix in (".yaml", ".yml") else root / MANIFEST_FILE


def _load_manifest(root: Path) -> tuple[Manifest, Positions]:
    path = _manifest_path(Path(root))
    manifest, positions = load_yaml_model(
        path,
        Manifest,
        shape="a course manifest is a mapping of fields (format_version, course, exercises)",
        start=f"start the file with 'format_version: {FORMAT_VERSION}' and 'course:'",
    )
    manifest._root = path.parent
    return manifest, positions


def load_manifest(root: Path) -> Manifest:
    """Read ``root/manifest.yaml`` (or the manifest file ``root``); ManifestError on problems."""
    return _load_manifest(root)[0]


def _load_exercise(folder: Path) -> tuple[Exercise, Positions]:
    folder = Path(folder)
    path = (
        folder / EXERCISE_FILE
        if folder.is_dir() or folder.suffix not in (".yaml", ".yml")
        else folder
    )
    exercise, positions = load_yaml_model(
        path,
        Exercise,
        shape="an exercise is a mapping of fields (id, title, scenario, mode, checks, ...)",
        start="start the file with 'id:' and 'title:'",
    )
    filename = str(path)
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for index, check in enumerate(exercise.checks):
        if check.id in seen:
            problems.append(
                problem_at(
                    ("checks", index, "id"),
                    f"duplicate check id {check.id!r} (first at checks[{seen[check.id]}])",
                    "give each check its own id",
                    positions,
                    filename,
                )
            )
        seen.setdefault(check.id, index)
    if problems:
        raise ManifestError(problems)
    exercise._folder = path.parent
    exercise._source = filename
    exercise._positions = positions
    return exercise, positions


def load_exercise(folder: Path) -> Exercise:
    """Read ``folder/exercise.yaml`` (or the file ``folder``); ManifestError on problems."""
    return _load_exercise(folder)[0]


_DEFAULT_COMPETENCIES = "competencies.yaml"


def load_competencies(path: Path | None = None) -> dict[str, Competency]:
    """Id → competency, from ``path`` or the framework shipped in ``grading/competencies.yaml``."""
    if path is None:
        path = Path(str(resources.files("grading") / _DEFAULT_COMPETENCIES))
    framework, positions = load_yaml_model(
        path,
        CompetencyFramework,
        shape="a competency framework is a mapping of fields (format_version, competencies)",
        start=f"start the file with 'format_version: {FORMAT_VERSION}' and 'competencies:'",
    )
    found: dict[str, Competency] = {}
    problems = []
    for index, competency in enumerate(framework.competencies):
        if competency.id in found:
            problems.append(
                problem_at(
                    ("competencies", index, "id"),
                    f"duplicate competency id {competency.id!r}",
                    "ids are unique: rename or remove one",
                    positions,
                    str(path),
                )
            )
        found.setdefault(competency.id, competency)
    if problems:
        raise ManifestError(problems)
    return found


# --- the scenario of an exercise -------------------------------------------------------


def deep_merge(base: Any, overrides: Any) -> Any:
    """``overrides`` merged into ``base`` (neither is modified):

    - mapping into mapping: key by key, recursively;
    - a non-empty list into a list when every item of both is a mapping with a ``name``
      (plant units, devices, tags): items merge by name, new names are appended in order;
    - anything else: the override replaces the base value.
    """
    if isinstance(base, Mapping) and isinstance(overrides, Mapping):
        merged = dict(base)
        for key, value in overrides.items():
            merged[key] = deep_merge(base[key], value) if key in base else value
        return merged
    if _named_list(base) and _named_list(overrides) and overrides:
        result = list(base)
        index = {item["name"]: i for i, item in enumerate(result)}
        for item in overrides:
            if item["name"] in index:
                position = index[item["name"]]
                result[position] = deep_merge(result[position], item)
            else:
                index[item["name"]] = len(result)
                result.append(item)
        return result
    return overrides


def _named_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(item, Mapping) and "name" in item for item in value
    )


def build_scenario(exercise: Exercise, variant: Mapping[str, Any] | None = None) -> Scenario:
    """The exercise's scenario: the bundled ``base`` with ``overrides`` (rendered with
    ``variant``) deep-merged in, then validated like any scenario file.

    Raises :class:`ManifestError` pointing at ``scenario`` in ``exercise.yaml``.
    """
    filename = exercise._source
    positions = exercise._positions
    bundled = bundled_scenarios()
    base = exercise.scenario.base
    if base not in bundled:
        guess = did_you_mean(base, bundled)
        raise ManifestError(
            [
                problem_at(
                    ("scenario", "base"),
                    f"no bundled scenario {base!r}",
                    f"{guess + ' ' if guess else ''}Bundled: {', '.join(bundled)}",
                    positions,
                    filename,
                )
            ]
        )
    try:
        overrides = render_value(
            exercise.scenario.overrides, variant or {}, filename, "scenario.overrides"
        )
    except VariantError as err:
        raise ManifestError(
            [
                problem_at(
                    ("scenario", "overrides"),
                    err.detail,
                    "use the variant's parameter names",
                    positions,
                    filename,
                )
            ]
        ) from None
    data = yaml.safe_load(bundled[base].read_text(encoding="utf-8"))
    merged = deep_merge(data, overrides)
    text = yaml.safe_dump(merged, sort_keys=False, allow_unicode=True)
    try:
        return parse_scenario(text, f"{filename} (scenario {base} + overrides)")
    except ScenarioError as err:
        raise ManifestError(
            [
                problem_at(
                    ("scenario", "overrides"),
                    f"with these overrides the scenario {base!r} is invalid: "
                    f"{p.path + ': ' if p.path else ''}{p.message}",
                    p.hint,
                    positions,
                    filename,
                )
                for p in err.problems
            ]
        ) from None


# --- the lint --------------------------------------------------------------------------


def check_manifest(
    root: Path,
    *,
    competencies: Mapping[str, Competency] | None = None,
    known_checks: Collection[str] | None = None,
) -> list[Problem]:
    """Every problem of the course at ``root`` (``manifest.yaml`` and each exercise folder).

    Checks that the files parse; exercise ids are unique; every folder, ``exercise.yaml``,
    ``README.md``, starter and solution file exists; each exercise's id matches its entry;
    hint ladders have exactly three rungs; every competency exists in the framework (by
    default ``grading/competencies.yaml``) and the manifest entry lists the competencies its
    checks are tagged with (and each listed one is checked); check points add up to the
    entry's points; time limits agree; the scenario builds with a drawn variant and the brief
    and check params only use the variant's parameters. With ``known_checks``, library check
    types must be among them. Empty list: the course is fine.
    """
    try:
        manifest, positions = _load_manifest(Path(root))
    except ManifestError as err:
        return list(err.problems)
    if competencies is None:
        try:
            competencies = load_competencies()
        except ManifestError as err:
            return list(err.problems)
    filename = str(_manifest_path(Path(root)))
    problems: list[Problem] = []

    def here(loc: Loc, message: str, hint: str = "") -> None:
        problems.append(problem_at(loc, message, hint, positions, filename))

    seen_ids: dict[str, int] = {}
    seen_folders: dict[str, int] = {}
    for index, entry in enumerate(manifest.exercises):
        loc: Loc = ("exercises", index)
        if entry.id in seen_ids:
            here(
                (*loc, "id"),
                f"duplicate exercise id {entry.id!r} (first at exercises[{seen_ids[entry.id]}])",
                "give each exercise its own id",
            )
        seen_ids.setdefault(entry.id, index)
        if entry.folder in seen_folders:
            here(
                (*loc, "folder"),
                f"folder {entry.folder!r} is used twice (first at "
                f"exercises[{seen_folders[entry.folder]}])",
                "give each exercise its own folder",
            )
        seen_folders.setdefault(entry.folder, index)
        for k, competency in enumerate(entry.competencies):
            if competency not in competencies:
                here(
                    (*loc, "competencies", k),
                    f"unknown competency {competency!r}",
                    _known_hint(competency, competencies),
                )
        folder = manifest.root / entry.folder
        if not folder.is_dir():
            here(
                (*loc, "folder"),
                f"the folder {str(folder)!r} does not exist",
                "create it, or fix the folder name",
            )
            continue
        if not (folder / BRIEF).is_file():
            here(
                (*loc, "folder"),
                f"the exercise has no brief: {str(folder / BRIEF)!r} is missing",
                "write the brief the apprentice reads in README.md",
            )
        if not (folder / EXERCISE_FILE).is_file():
            here(
                (*loc, "folder"),
                f"{str(folder / EXERCISE_FILE)!r} is missing",
                "every exercise folder holds an exercise.yaml",
            )
            continue
        try:
            exercise, ex_positions = _load_exercise(folder)
        except ManifestError as err:
            problems.extend(err.problems)
            continue
        problems.extend(
            _check_exercise(
                exercise,
                ex_positions,
                entry,
                entry_loc=loc,
                manifest_positions=positions,
                manifest_file=filename,
                competencies=competencies,
                known_checks=known_checks,
            )
        )
    return problems


def _known_hint(word: str, competencies: Mapping[str, Competency]) -> str:
    guess = did_you_mean(word, competencies)
    return f"{guess + ' ' if guess else ''}Known competencies: {', '.join(competencies)}"


def _check_exercise(
    exercise: Exercise,
    positions: Positions,
    entry: ManifestEntry,
    *,
    entry_loc: Loc,
    manifest_positions: Positions,
    manifest_file: str,
    competencies: Mapping[str, Competency],
    known_checks: Collection[str] | None,
) -> list[Problem]:
    """The cross-file problems of one exercise against its manifest entry."""
    filename = exercise._source
    problems: list[Problem] = []

    def here(loc: Loc, message: str, hint: str = "") -> None:
        problems.append(problem_at(loc, message, hint, positions, filename))

    def in_manifest(field: str, message: str, hint: str = "") -> None:
        problems.append(
            problem_at((*entry_loc, field), message, hint, manifest_positions, manifest_file)
        )

    if exercise.id != entry.id:
        here(
            ("id",),
            f"the exercise id {exercise.id!r} differs from the manifest's {entry.id!r}",
            "use the same id in manifest.yaml and exercise.yaml",
        )
    for kind in ("starter", "solution"):
        files: list[str] = getattr(exercise, kind)
        for k, name in enumerate(files):
            if not (exercise.folder / name).is_file():
                here(
                    (kind, k),
                    f"{kind} file {str(exercise.folder / name)!r} does not exist",
                    f"create it, or remove it from '{kind}'",
                )
    tagged: set[str] = set()
    for index, check in enumerate(exercise.checks):
        for k, competency in enumerate(check.competencies):
            tagged.add(competency)
            if competency not in competencies:
                here(
                    ("checks", index, "competencies", k),
                    f"unknown competency {competency!r}",
                    _known_hint(competency, competencies),
                )
            elif competency not in entry.competencies:
                here(
                    ("checks", index, "competencies", k),
                    f"competency {competency!r} is not listed for {entry.id!r} in the manifest",
                    "add it to the manifest entry's competencies, or untag the check",
                )
        if (
            known_checks is not None
            and check.python_target is None
            and check.type not in known_checks
        ):
            guess = did_you_mean(check.type, known_checks)
            here(
                ("checks", index, "type"),
                f"unknown check type {check.type!r}",
                f"{guess + ' ' if guess else ''}Known: {', '.join(sorted(known_checks))}",
            )
    for k, competency in enumerate(entry.competencies):
        if competency in competencies and competency not in tagged:
            problems.append(
                problem_at(
                    (*entry_loc, "competencies", k),
                    f"no check of {entry.id!r} is tagged with competency {competency!r}",
                    "tag the checks that assess it, or remove it from the entry",
                    manifest_positions,
                    manifest_file,
                )
            )
    if exercise.points != entry.points:
        in_manifest(
            "points",
            f"the checks of {entry.id!r} add up to {exercise.points} points, "
            f"the manifest says {entry.points}",
            "make the manifest's points the sum of the checks' points",
        )
    if exercise.time_limit_s is not None and exercise.time_limit_s != entry.time_limit_s:
        here(
            ("time_limit_s",),
            f"time_limit_s {exercise.time_limit_s:g} differs from the "
            f"manifest's {entry.time_limit_s:g}",
            "keep one value, or remove it here",
        )
    variant = draw_variant(exercise.variant, 0)
    try:
        build_scenario(exercise, variant)
    except ManifestError as err:
        problems.extend(err.problems)
    texts: list[tuple[Loc, Any]] = [(("hints", k), hint) for k, hint in enumerate(exercise.hints)]
    for index, check in enumerate(exercise.checks):
        texts.append((("checks", index, "title"), check.title))
        texts.append((("checks", index, "params"), check.params))
    for loc, value in texts:
        try:
            render_value(value, variant, filename, format_path(loc))
        except VariantError as err:
            here(loc, err.detail, "use the variant's parameter names, or \\{{ for a literal '{{'")
    if exercise.brief_path.is_file():
        try:
            render_brief(
                decode_text(exercise.brief_path, ManifestError), variant, str(exercise.brief_path)
            )
        except VariantError as err:
            problems.append(
                Problem(
                    err.detail,
                    file=str(exercise.brief_path),
                    line=err.line,
                    hint="use the variant's parameter names, or \\{{ for '{{'",
                )
            )
        except ManifestError as err:
            problems.extend(err.problems)
    return problems
