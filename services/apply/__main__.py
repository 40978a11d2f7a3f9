"""`python -m services.apply`: run the apply service until SIGTERM."""

from libs.common.app import run
from services.apply.app import SPEC


def main() -> None:
    run(SPEC)


if __name__ == "__main__":
    main()
