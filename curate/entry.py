"""The `curate` command's entry point: Ctrl-C at any moment, even while the CLI is still being
imported, ends with one line and exit status 130, never a traceback."""

from __future__ import annotations

import sys

INTERRUPTED = 130


def main() -> None:
    try:
        from curate.cli import main as cli_main

        cli_main()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted before any work was done; run the same command again\n")
        sys.exit(INTERRUPTED)
