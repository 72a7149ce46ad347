"""The Gradio glue the apps share: a refused request (NbkitError, ValueError) shown as a message in the app, and
`Blocks`, whose API answers a malformed value with one short line instead of a server traceback per call.

`apps/*.py` import this module and `nbkit.serve.backend`, never `nbkit.serve.launch`, so that serve can import the apps by name
without an import cycle.
"""

from __future__ import annotations

import functools
import inspect
import re

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


@functools.cache
def _blocks_class():
    import gradio as gr

    class Blocks(gr.Blocks):
        """gr.Blocks whose events answer a malformed API value (a word for a slider, too few inputs) with one
        short message to the caller, e.g. "Temperature (0 = greedy): 'abc' is not a valid value.", instead of
        Gradio's full traceback in the server's log for every such call (and an empty error for the caller)."""

        async def preprocess_data(self, block_fn, inputs, state, *args, **kwargs):
            try:
                return await super().preprocess_data(block_fn, inputs, state, *args, **kwargs)
            except gr.Error:
                raise
            except ValueError as e:  # ComponentProcessingError, or the wrong number of inputs
                raise gr.Error(bad_input_message(block_fn.inputs, inputs, e), print_exception=False) from None

    return Blocks


def bad_input_message(components, values, error: Exception) -> str:
    """One line for values Gradio could not take, naming the input by its label.

    Example: ([textbox, slider "Temperature"], ["hi", "abc"], error at index 1)
    -> "Temperature: 'abc' is not a valid value."
    """
    values = list(values or [])
    if len(values) != len(components):
        return f"This endpoint takes {len(components)} values; {len(values)} were sent."
    at = re.search(r"input component at index (\d+)", str(error))
    if at and int(at.group(1)) < len(components):
        i = int(at.group(1))
        name = getattr(components[i], "label", None) or type(components[i]).__name__
        return f"{name}: {str(values[i])[:40]!r} is not a valid value."
    return "A value sent to this endpoint is not valid."


def __getattr__(name):  # `Blocks` is built on first use: importing this module does not import gradio
    if name == "Blocks":
        return _blocks_class()
    raise AttributeError(name)
