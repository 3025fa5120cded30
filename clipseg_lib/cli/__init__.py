"""``clipseg-study``: thin command-line adapters over the library, one module per subcommand."""
