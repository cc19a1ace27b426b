"""Paste filter that takes keystonemiddleware's place in nova-api's pipeline (test lab only).

Nova 34 dropped its noauth2 pipeline, and the lab runs no Keystone. A request carrying the lab's
token gets the headers keystonemiddleware would set for an admin; Nova's own
NovaKeystoneContext then builds the request context from them, so policy checks run unchanged.
"""

from __future__ import annotations

import webob.dec
import webob.exc


def filter_factory(global_conf, token, project="admin", **local_conf):
    def wrap(app):
        @webob.dec.wsgify
        def authenticate(request):
            if request.headers.get("X-Auth-Token") != token:
                return webob.exc.HTTPUnauthorized()
            request.headers.update(
                {
                    "X-User-Id": "admin",
                    "X-User-Name": "admin",
                    "X-Project-Id": project,
                    "X-Project-Name": project,
                    "X-Roles": "admin,member,reader",
                    "X-Identity-Status": "Confirmed",
                }
            )
            return request.get_response(app)

        return authenticate

    return wrap
