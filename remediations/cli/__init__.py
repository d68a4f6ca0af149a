"""Command-line subcommands that need no tenant (loaded by remediations/__main__.py; not remediations)."""
