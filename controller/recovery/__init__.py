"""The recovery domain: gates, planning and workflows. Imports neither kopf nor openstacksdk."""
