"""One module per page: each builds the page's template context from the `AuditReader` (no HTTP here,
so the self-contained report reuses the session page's context)."""
