"""One module per ``carvana <stage>`` subcommand, named after it (``carvana tune-threshold`` is
``tune_threshold.py``): its ``HELP``, its ``add_arguments(parser)`` and its ``run(args)``.

This file imports nothing: importing a stage runs it, and the stage digest
(``carvana.stage_code``) counts what a stage imports, so one stage must not pull in the others.
"""
