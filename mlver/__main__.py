"""``python -m mlver`` and the ``mlver`` console script. Kept tiny: a Ctrl-C while the
CLI is still being imported must end with exit 130 and one line, not a traceback."""

import gc
import sys

# A command lives for seconds and builds tens of thousands of small tuples at once
# (digests, stat rows, inventory entries). Python's default collector runs every 700
# allocations and rescans what survived before: it took a third of `status -r` on 20,000
# packed files. Here it runs 70x less often, and what start-up loaded (modules, classes)
# is frozen out of its scans; reference counting still frees nearly everything at once.
# Only the CLI does this: a program using mlver.api keeps its own collector settings.
GC_THRESHOLD = (50_000, 20, 20)


def main() -> None:
    gc.set_threshold(*GC_THRESHOLD)
    try:
        from mlver.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("mlver: error: interrupted\n")
        sys.exit(130)
    gc.freeze()
    cli_main()


if __name__ == "__main__":
    main()
