"""``clipseg-study export-world``: the synthetic world in a benchmark's file format."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clipseg_lib.datasets.export import DEFAULT_IMAGES, FORMATS, export_world


def add_export_world_command(commands: argparse._SubParsersAction) -> None:
    """Register ``clipseg-study export-world``."""
    parser = commands.add_parser(
        "export-world", help="write the synthetic world as PhraseCut, Pascal-5i or RefCOCO files"
    )
    parser.add_argument("directory", type=Path, help="output directory (created)")
    parser.add_argument("--format", required=True, choices=FORMATS, dest="format_name")
    parser.add_argument("--images", type=int, default=DEFAULT_IMAGES, dest="n_images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="write into a non-empty directory")
    parser.set_defaults(handler=_export_world_command)


def _export_world_command(arguments: argparse.Namespace) -> int:
    try:
        directory = export_world(
            arguments.format_name, arguments.directory, n_images=arguments.n_images,
            seed=arguments.seed, force=arguments.force,
        )
    except (OSError, ValueError) as error:
        print(f"clipseg-study: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {arguments.format_name} world of {arguments.n_images} images to {directory}")
    return 0
