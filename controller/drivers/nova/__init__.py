"""Nova: the interface the recovery code uses (model) and its openstacksdk implementation."""
