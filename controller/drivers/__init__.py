"""Drivers: the operator's reach into Nova, Pacemaker and Kubernetes, behind small interfaces."""
