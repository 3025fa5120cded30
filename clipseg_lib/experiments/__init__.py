"""What the study's notebooks share: cases, procedures, verdict rules and their figures."""
