"""Flux API kinds of the helm group."""
