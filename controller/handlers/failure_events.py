"""FailureEvent handlers: label new reports, and drive each open one to its end."""

from __future__ import annotations

from typing import Any

import kopf

from controller import metrics
from controller.handlers.runtime import runtime_of
from controller.handlers.startup import FINALIZER
from controller.monitors.reporting import LABEL_VALUE
from controller.recovery.gates import TERMINAL
from controller.resources.common import GROUP, VERSION

LABEL = "masakari.dev"


def _open(status: kopf.Status, **_: Any) -> bool:
    return status.get("phase") not in TERMINAL


# Only open events: one first seen already ended (restored from a backup, left by a migration
# or an earlier installation) is history, never written; patching each once on sight was a
# storm of thousands of concurrent PATCHes at scale. A report is always created open.
@kopf.on.create(GROUP, VERSION, "failureevents", when=_open)
async def received(
    spec: kopf.Spec,
    labels: kopf.Labels,
    patch: kopf.Patch,
    memo: Any,
    namespace: str | None,
    **_: Any,
) -> None:
    """Count the report and label it, so `kubectl get fev -l masakari.dev/...` finds it."""
    metrics.events_received.labels(spec["type"]).inc()
    wanted = {f"{LABEL}/host": spec["host"], f"{LABEL}/type": spec["type"]}
    if f"{LABEL}/segment" not in labels:
        host = await runtime_of(memo).store.host(namespace or "", spec["host"])
        if host is not None:
            wanted[f"{LABEL}/segment"] = host.spec.segment
    # A name a label cannot hold (past 63 characters) is left out, as the API and the host
    # monitor do: the API server refuses the whole patch otherwise, and kopf retries it forever.
    missing = {k: v for k, v in wanted.items() if labels.get(k) != v and LABEL_VALUE.match(v)}
    if missing:
        patch.metadata.labels.update(missing)


# kopf restarts a failed daemon after 60 s by default; a recovery interrupted by an error
# (Kubernetes unreachable for longer than the driver's retries) resumes within seconds instead.
RESTART_AFTER_ERROR = 2.0
# An event's daemon is asked to stop when the event ends (its last status write makes `when`
# false): it gets this long to return on its own before kopf cancels it, so an ordinary end is
# not logged as a cancelled handler.
GRACEFUL_EXIT = 10.0


@kopf.daemon(
    GROUP,
    VERSION,
    "failureevents",
    when=_open,
    cancellation_backoff=GRACEFUL_EXIT,
    cancellation_timeout=30.0,
    backoff=RESTART_AFTER_ERROR,
)
async def recover(
    name: str, namespace: str | None, memo: Any, stopped: kopf.DaemonStopped, **_: Any
) -> None:
    """Runs while the event is open; a restarted operator starts it again and it resumes."""

    async def wait(seconds: float) -> bool:
        await stopped.wait(seconds)
        return bool(stopped)

    runtime = runtime_of(memo)
    with metrics.handler_duration.labels("recover").time():
        await runtime.lifecycle.process(namespace or "", name, wait)
    # kopf watches open events only (startup): the write that ended this one took it out of
    # kopf's sight before kopf could take its finalizer off, which deletion would wait for.
    await runtime.store.release_ended_event(namespace or "", name, FINALIZER)
