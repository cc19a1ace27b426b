"""Resource models (pydantic) and the CRDs generated from them."""
