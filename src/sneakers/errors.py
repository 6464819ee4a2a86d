"""One clear line for every error a user can fix, and no traceback for it."""

from __future__ import annotations

import sys
from collections.abc import Callable


class SneakersError(Exception):
    """An error the user can act on: the message says what went wrong and what to do."""


def run_main(main: Callable[[], None]) -> None:
    """Run a stage or command; turn a SneakersError into one stderr line and exit code 1."""
    try:
        main()
    except SneakersError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("interrupted: outputs were not completed; run the command again", file=sys.stderr)
        raise SystemExit(130) from None
