"""Flux API kinds of the source group."""
