"""The HTTP layer: Falcon resources, middleware and the mapping of errors to responses."""
