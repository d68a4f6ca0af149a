"""Trigger plumbing: input validation, alert parsing, run store, observability (issue 10)."""
