"""``python -m clipseg_lib run ...``: the study runner (see :mod:`clipseg_lib.runner`)."""

from __future__ import annotations

from clipseg_lib.runner import main

raise SystemExit(main())
