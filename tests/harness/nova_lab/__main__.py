"""`python -m tests.harness.nova_lab up|install`: the lab by hand, with its figures."""

from __future__ import annotations

import argparse
import signal
import sys
import time

from .backend import running_nova_backend
from .lab import install


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.nova_lab")
    parser.add_argument("action", choices=["up", "install"])
    args = parser.parse_args(argv)
    if args.action == "install":
        begin = time.monotonic()
        print(f"{install()} (in {time.monotonic() - begin:.1f}s)")
        return 0
    with running_nova_backend() as backend:
        print(f"logs in {backend.lab.workdir / 'log'}", flush=True)
        print(
            f"export OS_CLIENT_CONFIG_FILE={backend.clouds_yaml} OS_CLOUD={backend.cloud}",
            flush=True,
        )
        # Until Ctrl-C or SIGTERM; leaving the block tears the lab down.
        stop = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop)
        signal.sigwait(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
