"""A BMC's credentials as read from its Secret, and the one way their text leaves a message."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Credentials:
    # repr=False: a Credentials caught in a traceback, a log call or an f-string shows no secret.
    username: str = field(repr=False)
    password: str = field(repr=False)

    def scrub(self, text: str) -> str:
        """`text` (a library's error message) with any occurrence of the credentials masked: a
        library may echo a URL or a request it was given, and the message goes to status,
        Events and logs."""
        for secret in sorted((self.password, self.username), key=len, reverse=True):
            if secret:
                text = text.replace(secret, "***")
        return text
