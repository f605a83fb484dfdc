"""The learning session: its events, lifecycle, aggregate and next step."""
