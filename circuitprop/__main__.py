"""``python -m circuitprop``: the command line (same as the ``circuitprop`` script)."""

from .cli import main

raise SystemExit(main())
