"""One Textual screen per file: the tools of the UI (see :data:`simlab.tui.app.SCREENS`)."""
