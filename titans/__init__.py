"""Titans: Learning to Memorize at Test Time -- a faithful, tested reference implementation."""

__version__ = "0.1.0"
