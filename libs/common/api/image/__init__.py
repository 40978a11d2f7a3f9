"""Flux API kinds of the image group."""
