"""Fixtures of the apply service tests (the harness lives in support.py)."""

from services.apply.tests.support import harness

__all__ = ["harness"]
