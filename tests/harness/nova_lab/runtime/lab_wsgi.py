"""WSGI applications of the lab's API services, for gunicorn (`lab_wsgi:nova_api()`).

Nova's and Glance's WSGI modules parse sys.argv with oslo.config at import time and would
reject gunicorn's own arguments, so each factory hides them before importing.
"""

from __future__ import annotations

import sys


def _without_gunicorn_argv() -> None:
    sys.argv = sys.argv[:1]


def nova_api():
    _without_gunicorn_argv()
    from nova.wsgi.osapi_compute import application

    return application


def placement():
    _without_gunicorn_argv()
    from placement.wsgi import init_application

    return init_application()


def glance():
    _without_gunicorn_argv()
    from glance.wsgi.api import application

    return application
