"""Flux API kinds of the kustomize group."""
