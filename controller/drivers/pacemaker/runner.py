"""Runs Pacemaker's command line tools on a cluster node: here, or over SSH.

Commands are argument lists from start to end. Locally they are executed without a shell. Over
SSH the remote side always hands the command to the login shell, so every argument is quoted
with shlex and node names were validated beforehand; nothing user-supplied is ever pasted into
a command string unquoted.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from controller.recovery.pacemaker import (
    CommandTimeout,
    InvalidNodeName,
    PacemakerError,
    ToolMissing,
)
from controller.resources.common import HOSTNAME_PATTERN

DEFAULT_TIMEOUT = 30.0
_NODE_NAME = re.compile(HOSTNAME_PATTERN)
# Pacemaker's tools live in sbin, which a service account's PATH often lacks.
_SBIN = ("/usr/sbin", "/sbin")
_REMOTE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def validate_node_name(name: str) -> str:
    """Return `name` if it can only be a node name; raise InvalidNodeName otherwise.

    The pattern (letters, digits, dot, dash, underscore; a letter or digit first) is Masakari's
    host name rule: it excludes shell metacharacters, whitespace and a leading dash (an option).
    """
    if not isinstance(name, str) or len(name) > 255 or not _NODE_NAME.fullmatch(name):
        raise InvalidNodeName(f"not a valid Pacemaker node name: {name!r}")
    return name


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class CommandRunner(Protocol):
    """Runs one command (an argument list) on a cluster node, bounded by `timeout` seconds."""

    def run(self, argv: Sequence[str], timeout: float = DEFAULT_TIMEOUT) -> CommandResult: ...


def _execute(argv: list[str], timeout: float, env: dict[str, str] | None) -> CommandResult:
    try:
        completed = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            # A byte that is not UTF-8 (a node attribute in Latin-1, a truncated line) must
            # not raise past the callers' PacemakerError handlers; the parser refuses it.
            errors="replace",
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    except subprocess.TimeoutExpired as error:
        raise CommandTimeout(f"{argv[0]} did not finish within {timeout:g}s") from error
    except FileNotFoundError as error:
        raise ToolMissing(f"{argv[0]} is not installed") from error
    except OSError as error:
        raise PacemakerError(f"cannot run {argv[0]}: {error.strerror}") from error
    return CommandResult(tuple(argv), completed.returncode, completed.stdout, completed.stderr)


@dataclass(frozen=True)
class LocalRunner:
    """Runs commands on this machine, which is a cluster node.

    `prefix` is prepended to every command, e.g. `sudo -n` or an `nsenter` into the node's
    namespaces when the agent runs beside the node rather than in it.
    """

    prefix: tuple[str, ...] = ()

    def run(self, argv: Sequence[str], timeout: float = DEFAULT_TIMEOUT) -> CommandResult:
        env = dict(os.environ)
        path = env.get("PATH", "")
        env["PATH"] = os.pathsep.join([path, *_SBIN]) if path else os.pathsep.join(_SBIN)
        return _execute([*self.prefix, *argv], timeout, env)


@dataclass(frozen=True)
class SshRunner:
    """Runs commands on a cluster node over SSH, non-interactively.

    BatchMode refuses any password or passphrase prompt, so a missing key fails at once instead
    of hanging; the connection has its own timeout, and the whole command the caller's.
    """

    host: str
    user: str | None = None
    port: int = 22
    identity_file: str | None = None
    known_hosts_file: str | None = None
    connect_timeout: int = 5
    ssh_binary: str = "ssh"

    def __post_init__(self) -> None:
        validate_node_name(self.host)
        if self.user is not None and not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", self.user):
            raise InvalidNodeName(f"not a valid SSH user name: {self.user!r}")

    def ssh_argv(self, argv: Sequence[str]) -> list[str]:
        options = [
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={self.connect_timeout}",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=2",
            "-p",
            str(self.port),
        ]
        if self.identity_file:
            options += ["-i", self.identity_file, "-o", "IdentitiesOnly=yes"]
        if self.known_hosts_file:
            options += ["-o", f"UserKnownHostsFile={self.known_hosts_file}"]
        destination = f"{self.user}@{self.host}" if self.user else self.host
        remote = shlex.join(["env", f"PATH={_REMOTE_PATH}", *argv])
        return [self.ssh_binary, *options, "--", destination, remote]

    def run(self, argv: Sequence[str], timeout: float = DEFAULT_TIMEOUT) -> CommandResult:
        result = _execute(self.ssh_argv(argv), timeout, None)
        if result.returncode == 255:
            # ssh's own failure (connection, authentication), not the command's.
            lines = result.stderr.strip().splitlines()
            raise PacemakerError(f"ssh to {self.host} failed: {lines[-1] if lines else 'rc=255'}")
        return CommandResult(tuple(argv), result.returncode, result.stdout, result.stderr)
