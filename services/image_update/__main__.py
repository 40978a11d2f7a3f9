"""`python -m services.image_update`: run the image-update service until SIGTERM."""

from libs.common.app import run
from services.image_update.app import SPEC


def main() -> None:
    run(SPEC)


if __name__ == "__main__":
    main()
