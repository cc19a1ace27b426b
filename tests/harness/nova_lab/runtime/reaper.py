"""Kills the lab's process groups once its owner is gone, however it went.

The test process writes "add PGID" / "remove PGID" lines to this process's stdin. End of input
means the owner closed the pipe or died (even by SIGKILL): every group still registered gets
SIGKILL and the lab's directory, when given, is removed. Usage: reaper.py [WORKDIR]
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time


def main() -> None:
    # Ctrl-C in a terminal reaches the whole foreground group; the owner handles it, not us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    groups: set[int] = set()
    for line in sys.stdin:
        action, _, pgid = line.partition(" ")
        if action == "add":
            groups.add(int(pgid))
        elif action == "remove":
            groups.discard(int(pgid))
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    if groups:
        time.sleep(0.5)  # let the kernel close the killed processes' files before removal
    if len(sys.argv) > 1:
        shutil.rmtree(sys.argv[1], ignore_errors=True)


if __name__ == "__main__":
    main()
