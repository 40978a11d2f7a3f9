"""``python -m libs.kustomize build DIR``."""

from __future__ import annotations

import sys

from libs.kustomize.cli import main

if __name__ == "__main__":
    sys.exit(main())
