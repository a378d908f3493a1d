"""simlab: a training-base lab simulator for the industrial internet."""

__all__ = ["__version__"]

__version__ = "0.1.0"
