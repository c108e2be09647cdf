"""Runnable examples of recording runs (`python -m registry.examples.quickstart`)."""
