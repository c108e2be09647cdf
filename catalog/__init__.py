"""Cairn's catalog package (placeholder until its issue lands)."""
