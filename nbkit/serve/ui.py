"""The Gradio glue the apps share: a refused request (NbkitError, ValueError) shown as a message in the app.

`apps/*.py` import this module and `nbkit.serve.backend`, never `nbkit.serve.launch`, so that serve can import the apps by name
without an import cycle.
"""

from __future__ import annotations

import functools
import inspect

from nbkit.errors import NbkitError


def ui_errors(fn):
    """Show ServeError/NbkitError/ValueError messages in the app (gr.Error) instead of a generic 'Error'."""
    import gradio as gr

    @functools.wraps(fn)
    def gen(*a, **kw):
        try:
            yield from fn(*a, **kw)
        except (NbkitError, ValueError) as e:
            raise gr.Error(str(e), print_exception=False) from e

    @functools.wraps(fn)
    def call(*a, **kw):
        try:
            return fn(*a, **kw)
        except (NbkitError, ValueError) as e:
            raise gr.Error(str(e), print_exception=False) from e

    return gen if inspect.isgeneratorfunction(fn) else call


def ui_warn(fn, n_outputs: int):
    """For events whose outputs must stay visible: a refused request shows its message as a gr.Warning toast and
    leaves every output as it was (gr.Error would cover them with red "Error" badges)."""
    import gradio as gr

    def skip():
        return gr.skip() if n_outputs == 1 else tuple(gr.skip() for _ in range(n_outputs))

    @functools.wraps(fn)
    def gen(*a, **kw):
        try:
            yield from fn(*a, **kw)
        except (NbkitError, ValueError) as e:
            gr.Warning(str(e))
            yield skip()

    @functools.wraps(fn)
    def call(*a, **kw):
        try:
            return fn(*a, **kw)
        except (NbkitError, ValueError) as e:
            gr.Warning(str(e))
            return skip()

    return gen if inspect.isgeneratorfunction(fn) else call
