"""Wiring of the default adapters (filled in by the engine split)."""
