"""`python -m services.notify`: run the notify service until SIGTERM."""

from libs.common.app import run
from services.notify.app import SPEC


def main() -> None:
    run(SPEC)


if __name__ == "__main__":
    main()
