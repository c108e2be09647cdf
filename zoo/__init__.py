"""Cairn's zoo package (placeholder until its issue lands)."""
