"""Vetted analyses: the only code a node runs. Look one up with :func:`get_analysis`."""

from phds.analyses.base import Analysis, Final, LocalStep, NextRound
from phds.analyses.registry import available_analyses, get_analysis

__all__ = ["Analysis", "Final", "LocalStep", "NextRound", "available_analyses", "get_analysis"]
