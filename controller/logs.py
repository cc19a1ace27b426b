"""Log lines that say which event and host they are about, as text or as JSON."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

CONTEXT = ("namespace", "event", "host", "object")


class ContextFormatter(logging.Formatter):
    """`time level logger [namespace=… event=… host=…] message`, or one JSON object a line."""

    def __init__(self, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        context = {k: getattr(record, k) for k in CONTEXT if getattr(record, k, None)}
        reference = getattr(record, "k8s_ref", None)  # kopf's per-object loggers set it
        if isinstance(reference, dict) and reference.get("name"):
            context.setdefault("namespace", reference.get("namespace", ""))
            key = "event" if reference.get("kind") == "FailureEvent" else "object"
            context.setdefault(key, f"{reference.get('kind', '')}/{reference['name']}")
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        moment = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        if self.as_json:
            return json.dumps(
                {
                    "time": moment,
                    "level": record.levelname,
                    "logger": record.name,
                    **context,
                    "message": message,
                }
            )
        where = " ".join(f"{k}={v}" for k, v in context.items())
        where = f"[{where}] " if where else ""
        return f"{moment} {record.levelname} {record.name} {where}{message}"


def configure(verbose: bool, as_json: bool) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(ContextFormatter(as_json))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        # kopf reports every successful handler and timer run; our own loggers say what
        # changed, so kopf's per-object lines are kept for warnings and errors.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
