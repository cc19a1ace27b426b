"""Masakari's v1 REST API (microversions 1.0-1.3), served from the custom resources."""
