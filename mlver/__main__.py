"""``python -m mlver`` and the ``mlver`` console script. Kept tiny: a Ctrl-C while the
CLI is still being imported must end with exit 130 and one line, not a traceback."""

import sys


def main() -> None:
    try:
        from mlver.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("mlver: error: interrupted\n")
        sys.exit(130)
    cli_main()


if __name__ == "__main__":
    main()
