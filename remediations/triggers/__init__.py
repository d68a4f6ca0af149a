"""Trigger plumbing: input validation, alert parsing, run store, observability."""
