"""The Engine facade (filled in by the engine split)."""
