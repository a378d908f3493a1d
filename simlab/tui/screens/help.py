"""The help screen: the keys of the app and of each tool."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

if TYPE_CHECKING:
    from simlab.tui.app import SimlabApp

__all__ = ["HelpScreen"]

GENERAL = """\
# simlab — keys

| key | does |
| --- | --- |
{screens}
| `?` or `F1` | this help (`Esc` closes it) |
| `Ctrl+P` | the command palette: every screen and action by name |
| `Tab` / `Shift+Tab` | move between the widgets of a screen |
| `Esc` | leave a text field (so the number keys switch screens again) |
| `q` | stop the lab and quit |

Every tool talks to the lab over the real protocol, as an outside tool would: the
Modbus poller is a Modbus TCP client, the OPC UA browser an OPC UA client, the MQTT
explorer an MQTT subscriber and the platform screen uses the platform's HTTP API.
Each screen lists its own keys in the footer.
"""


class HelpScreen(ModalScreen[None]):
    """The keys, in a box over the current screen."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark,f1", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        app = cast("SimlabApp", self.app)
        rows = "\n".join(f"| `{s.key}` | the {s.title} screen |" for s in app.screens)
        with VerticalScroll(id="help-box"):
            yield Markdown(GENERAL.format(screens=rows))

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
