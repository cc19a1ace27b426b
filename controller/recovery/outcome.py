"""How a recovery attempt ended, before the handler maps it onto phases and retries."""

from __future__ import annotations

from dataclasses import dataclass

from controller.resources.failure_event import EventPhase


@dataclass(frozen=True)
class Outcome:
    phase: EventPhase
    reason: str
    message: str

    @classmethod
    def finished(cls, reason: str, message: str) -> Outcome:
        return cls(EventPhase.FINISHED, reason, message)

    @classmethod
    def ignored(cls, reason: str, message: str) -> Outcome:
        return cls(EventPhase.IGNORED, reason, message)

    @classmethod
    def error(cls, reason: str, message: str) -> Outcome:
        return cls(EventPhase.ERROR, reason, message)
