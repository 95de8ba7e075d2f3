"""Sub-commands of ``python -m landslide_sar_plugin``.

Each module here defines ``NAME``, ``HELP`` and two functions:
``add_arguments(parser)`` declares the options (with units and defaults in the
help text) and ``run(args) -> int`` executes it by calling ``core`` functions,
returning the process exit code.  Parsing lives here; algorithms live in core.
"""

COMMAND_MODULES = ("simulate", "detect", "evaluate", "calibrate")
