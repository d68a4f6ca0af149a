"""The fixes: one module per remediation, its id equal to the module name (see core/registry.py)."""
