"""REST routes, versioned under /v1."""
