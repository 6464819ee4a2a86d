"""One clear line for every error a user can fix, and no traceback for it."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from types import FrameType


class SneakersError(Exception):
    """An error the user can act on: the message says what went wrong and what to do."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, a CI timeout, a scheduler), raised as an interrupt so that the cleanup
    every stage runs on Ctrl-C (removing its *.partial outputs) runs for it too."""


def run_main(main: Callable[[], None]) -> None:
    """Run a stage or command; turn a SneakersError into one stderr line and exit code 1, and
    Ctrl-C or SIGTERM into one line and exit code 130 or 143 (128 + the signal, as shells do)."""
    owner = os.getpid()

    def terminate(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != owner:  # a forked worker inherited this: end as it would without it
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        main()
    except SneakersError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt as err:
        print("interrupted: outputs were not completed; run the command again", file=sys.stderr)
        signum = signal.SIGTERM if isinstance(err, Terminated) else signal.SIGINT
        raise SystemExit(128 + signum) from None
    finally:
        signal.signal(signal.SIGTERM, previous or signal.SIG_DFL)
