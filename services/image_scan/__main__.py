"""`python -m services.image_scan`: run the image-scan service until SIGTERM."""

from libs.common.app import run
from services.image_scan.app import SPEC


def main() -> None:
    run(SPEC)


if __name__ == "__main__":
    main()
