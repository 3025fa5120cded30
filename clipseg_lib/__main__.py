"""``python -m clipseg_lib run ...``: the study runner (see :mod:`clipseg_lib.cli.main`)."""

from __future__ import annotations

from clipseg_lib.cli.main import main

raise SystemExit(main())
