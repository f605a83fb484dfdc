"""distill_es: event-sourced learning sessions for local AI agents."""

__version__ = "0.1.0"
