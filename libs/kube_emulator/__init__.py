"""A Kubernetes API server emulator for tests and the local embedded run (`sluice up`)."""

from .emulator import KubeEmulator
from .rollout import ANNOTATION as ROLLOUT_ANNOTATION

__all__ = ["ROLLOUT_ANNOTATION", "KubeEmulator"]
