"""Hostile servers and hostile callers: the threats of issue #5, each with its proof."""
