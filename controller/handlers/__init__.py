"""kopf handlers: thin adapters from Kubernetes objects to the recovery domain.

Importing this package registers every handler; `masakari-operator run` and kopf's
`kopf run -m controller.handlers` both do that.
"""

from controller.handlers import cloud_bindings, failure_events, hosts, segments, startup

__all__ = ["cloud_bindings", "failure_events", "hosts", "segments", "startup"]
