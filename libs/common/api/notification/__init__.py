"""Flux API kinds of the notification group."""
