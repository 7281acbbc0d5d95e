"""`python -m modelformats` is the `modelformats` command."""

from modelformats.cli import main

raise SystemExit(main())
