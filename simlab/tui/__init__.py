"""The terminal UI (Textual): the apprentice's workbench on a running lab.

Nothing below the faces imports this package; textual is imported here only.
"""

from simlab.tui.app import SCREENS, SimlabApp
from simlab.tui.plan import ExerciseContext, LabPlan

__all__ = ["SCREENS", "ExerciseContext", "LabPlan", "SimlabApp"]
