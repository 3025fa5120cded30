"""The model core: load a CLIPSeg, read images, build prompts, encode once and predict many.

This is the part a user takes away; it imports nothing else of `clipseg_lib`.
"""
