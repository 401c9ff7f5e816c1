"""Liaison: a secure inter-agency information-sharing broker."""

__version__ = "0.1.0"
