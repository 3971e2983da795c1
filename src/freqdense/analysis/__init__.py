"""Analyses of trained models (feature similarity, kernel frequency responses, ...)."""

from __future__ import annotations
