"""Scaffolding several test modules build the same way (real servers and real data only)."""
