"""vaultguard: finds and fixes the ways Azure Key Vault secrets leak through Power Automate."""

__version__ = "0.1.0"
