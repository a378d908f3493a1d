"""Protocol endpoints of devices (layer 3): each protocol library is imported in one module here."""

__all__: list[str] = []
