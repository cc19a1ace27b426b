"""keystoneauth1 plugin `lab_token` for real masakari-api in the lab (test only).

Masakari 22 builds its Nova client from a password-style plugin (auth URL, user name, password,
project, domains) and the lab runs no Keystone. This plugin takes those options and sends the
user name as a fixed token to the auth URL, which is Nova's endpoint: the lab's paste filter
accepts that token. Registered through a dist-info the harness writes (no install into the
cached virtualenv).
"""

from __future__ import annotations

from keystoneauth1 import loading, token_endpoint


class Loader(loading.BaseLoader):
    @property
    def plugin_class(self):
        return token_endpoint.Token

    def get_options(self):
        names = ("auth-url", "username", "password", "project-name", "user-domain-name",
                 "project-domain-name", "system-scope")  # fmt: skip
        return [loading.Opt(name) for name in names]

    def load_from_options(self, **options):
        return token_endpoint.Token(endpoint=options["auth_url"], token=options["username"])
