"""Settings: the argument dataclasses, how a YAML/JSON config plus the command line become them, and the
run's process set-up (logging, hardware and precision, the exit-on-bad-input wrapper).

A new option goes into `arguments.py`; nothing here reads data or builds models.
"""
