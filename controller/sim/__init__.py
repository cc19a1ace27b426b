"""A small OpenStack stand-in (Keystone v3 and the Nova compute API subset the operator uses),
for the demo and the fast tests; always driven through openstacksdk over HTTP."""
