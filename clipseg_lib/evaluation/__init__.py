"""Evaluation on the paper's datasets (PhraseCut, Pascal-5i, RefCOCO) and the paper's own rows
to compare with."""
