"""Temporal plumbing: client connection, the collection client facade, the dev server."""
