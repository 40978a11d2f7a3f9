"""The image-update demo that `make run` seeds (Flux's "automate image updates to Git" guide).

The demo needs image automation (image-scan, image-update, notify); until those services
reconcile their kinds, it says so and prints what the running stack offers instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from libs.cli.up import Stack


def run_demo(stack: Stack, stopping: Callable[[], bool]) -> None:
    print(
        "\nThe image-update demo is not available yet: image automation (ImageRepository, ImagePolicy,\n"
        "ImageUpdateAutomation) is not reconciled by this version of Sluice — those objects report\n"
        "Ready=False, reason NotImplemented. The stack below is up and usable:\n"
        f"  Kubernetes API  {stack.kube_url}   (kubeconfig {stack.kubeconfig})\n"
        f"  Git root        {stack.git_root}   (bare repositories, file:// URLs)\n"
        f"  OCI registry    {stack.registry.host if stack.registry else '-'}"
    )
