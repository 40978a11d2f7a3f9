"""`python -m services.source`: run the source service until SIGTERM."""

from libs.common.app import run
from services.source.app import SPEC


def main() -> None:
    run(SPEC)


if __name__ == "__main__":
    main()
