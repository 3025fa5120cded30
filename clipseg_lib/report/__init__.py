"""The report of a run: front page, notebook pages and HTML, ``compare`` of two runs and
``verify`` against the committed reference."""
