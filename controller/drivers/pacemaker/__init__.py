"""Pacemaker driver: cluster state from crm_mon, node standby and maintenance through the CLI."""
