"""Formal documents as files: letters rendered to PDF, with the font that sets them."""
