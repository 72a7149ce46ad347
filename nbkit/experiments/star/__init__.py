"""TRANSITIONAL: replaced when star moves into this subpackage (see nbkit/experiments/__init__.py)."""

from nbkit.star import cli  # noqa: F401
