"""TRANSITIONAL: replaced when rft moves into this subpackage (see nbkit/experiments/__init__.py)."""

from nbkit.rft import cli  # noqa: F401
