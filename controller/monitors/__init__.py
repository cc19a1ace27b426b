"""Agents that run beside the hypervisors and report failures as FailureEvents."""
