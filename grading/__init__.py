"""Assessment (layer 5): checks over the truth, the endpoints, the bus and the platform."""

__all__: list[str] = []
