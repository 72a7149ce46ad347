"""The Gradio apps (layout and event wiring only), registered by name in `nbkit.serve.APPS`."""
