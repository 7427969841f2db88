"""``python -m dsatok`` runs the ``dsatok`` command line."""

from .cli.main import main

raise SystemExit(main())
