"""Cairn's dashboard package (placeholder until its issue lands)."""
