"""Chat with one checkpoint on gr.ChatInterface: layout and event wiring only (the logic is nbkit.serve.backend.Backend).

Regenerate, undo, edit, copy and Stop (the square button while an answer streams) are Gradio's own events. A refused request (empty message, stop
string too long, ...) shows a warning and a note in the chat; the conversation stays.

    nbkit chat smollm2-135m            # or a run name, a hub id, a checkpoint or LoRA adapter folder
"""

import gradio as gr

from nbkit.errors import NbkitError
from nbkit.serve.backend import Backend, label_message
from nbkit.serve.limits import RANGES
from nbkit.serve.ui import Blocks, ui_warn


def build(backend: Backend) -> gr.Blocks:
    cfg, lim = backend.cfg, backend.limits

    def respond(message, history, label, *settings):
        try:
            yield from backend.chat(message, history, label, *settings, warn=gr.Warning)
        except NbkitError as e:  # the conversation stays visible; the note is never sent to the model
            gr.Warning(str(e))
            yield label_message(f"⚠ Not answered: {e}")

    with Blocks(title="nbkit chat", fill_height=True) as demo:
        gr.Markdown(
            "## nbkit chat\nPick a model (registry runs appear here), then type. Switching model keeps the chat."
        )
        with gr.Row():
            model = gr.Dropdown(backend.choices(), value=backend.default_models[0], label="Model", scale=4)
            refresh = gr.Button("Refresh list", scale=1)
        with gr.Accordion("Settings", open=False):
            system = gr.Textbox(label="System prompt", value="", max_length=cfg.max_input_chars)
            with gr.Row():
                temperature = gr.Slider(
                    *RANGES["temperature"], value=0.7, step=0.05, label="Temperature (0 = greedy)"
                )
                top_p = gr.Slider(*RANGES["top_p"], value=0.95, step=0.05, label="Top-p")
                top_k = gr.Slider(*RANGES["top_k"], value=0, step=1, label="Top-k (0 = off)")
            with gr.Row():
                repetition = gr.Slider(
                    *RANGES["repetition_penalty"], value=1.0, step=0.05, label="Repetition penalty (1 = off)"
                )
                max_new = gr.Slider(
                    1, cfg.max_new_tokens, value=cfg.default_new_tokens, step=1, label="Max new tokens"
                )
                seed = gr.Textbox(  # a Number box shows and sends 0 when empty: every answer would be seeded
                    value="", label="Seed (empty = random)", placeholder="random", max_length=12
                )
            stops = gr.Textbox(
                label=f"Stop strings (comma-separated; at most {lim.max_stops}, {lim.max_stop_chars} characters each)",
                value="",
                max_length=lim.max_stops * (lim.max_stop_chars + 2),
            )
        chatbot = gr.Chatbot(
            label="Conversation", elem_id="chatbot", height=460, buttons=["copy", "copy_all"]
        )
        chat = gr.ChatInterface(
            respond,
            chatbot=chatbot,
            textbox=gr.Textbox(
                placeholder="Ask something, then press Enter",
                elem_id="message",
                submit_btn=True,
                stop_btn=True,
            ),
            additional_inputs=[model, system, temperature, top_p, top_k, repetition, max_new, stops, seed],
            editable=True,
            api_name="chat",
            fill_height=False,
        )
        with gr.Row():
            export = gr.Button("Download conversation (JSON)", elem_id="export", scale=1)
            exported = gr.File(label="Conversation", visible=False, scale=2, elem_id="exported")

        def save(history, label, system, temperature, top_p, top_k, repetition, max_new, stop, seed):
            settings = dict(
                system=system, temperature=temperature, top_p=top_p, top_k=top_k, stop=stop, seed=seed
            )
            settings.update(repetition_penalty=repetition, max_new_tokens=max_new)
            return gr.File(value=backend.export_chat(history, label, settings), visible=True)

        export.click(
            ui_warn(save, 1),
            [chat.chatbot, model, system, temperature, top_p, top_k, repetition, max_new, stops, seed],
            exported,
            api_name="export",
        )
        refresh.click(lambda: gr.Dropdown(choices=backend.choices()), None, model, api_name="models")
    return demo
