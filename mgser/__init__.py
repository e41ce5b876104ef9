"""The ``mgser`` command: one group over the toolkit's commands (``mgser extract``, ``mgser train``, ...)."""
