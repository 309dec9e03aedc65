"""INTERPOL notice screening API."""

__version__ = "0.1.0"
