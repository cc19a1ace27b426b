"""Real Nova 34 (fake virt driver) on loopback for the contract suite's `real_nova` tier.

    python -m tests.harness.nova_lab up     # start it, print the clouds.yaml path; Ctrl-C stops

hack/nova-lab/install.sh installs what it runs on (first use only); lab.py runs the processes;
backend.py is the contract suite's NovaBackend on top of it. Root only. See docs/nova-lab.md.
"""

from .backend import NovaLabBackend, running_nova_backend
from .lab import NovaLab, NovaLabError, install

__all__ = ["NovaLab", "NovaLabBackend", "NovaLabError", "install", "running_nova_backend"]
