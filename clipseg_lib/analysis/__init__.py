"""Shared measuring tools: metrics and intervals, image distortions, plotting helpers."""
