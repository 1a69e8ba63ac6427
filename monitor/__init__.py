"""Commitment Monitor: clause-level tracking of public policy commitments."""

__version__ = "0.1.0"
