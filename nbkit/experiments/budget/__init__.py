"""TRANSITIONAL: replaced when budget moves into this subpackage (see nbkit/experiments/__init__.py)."""

from nbkit.budget import cli  # noqa: F401
