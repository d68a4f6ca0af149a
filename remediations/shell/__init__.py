"""The imperative shell: what reads and writes the world (inventory, apply, the audit log, settings,
pacing, shared reads) and the one run pipeline over them. `remediations.core` stays pure; the Azure
calls themselves stay in `remediations.adapters`."""
