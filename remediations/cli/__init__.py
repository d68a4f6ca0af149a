"""The command line's commands (remediations/__main__.py builds the parser and dispatches to them):
read-only ones (`read_commands.py`), the pipeline runs (`run_commands.py`), offline `scan-flows`
(`scan_flows.py`, `flow_files.py`, `scan_report.py`), what they share (`common.py`), the pre-flight
checks (`checks.py`) and the options of `serve` (`serve_options.py`)."""
