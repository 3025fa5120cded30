"""``python -m clipseg_lib run ...``: the study runner (see :mod:`clipseg_lib.study.cli`)."""

from __future__ import annotations

from clipseg_lib.study.cli import main

raise SystemExit(main())
