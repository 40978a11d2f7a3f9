"""`python -m services.build`: run the build service until SIGTERM."""

from libs.common.app import run
from services.build.app import SPEC


def main() -> None:
    run(SPEC)


if __name__ == "__main__":
    main()
