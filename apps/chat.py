"""Chat with one checkpoint: layout and event wiring only (the logic is nbkit.serve.Backend).

nbkit chat smollm2-135m            # or a run name, a hub id, a checkpoint or LoRA adapter folder
"""

import gradio as gr

from nbkit.serve import Backend, ui_errors


def build(backend: Backend) -> gr.Blocks:
    cfg = backend.cfg
    with gr.Blocks(title="nbkit chat") as demo:
        gr.Markdown(
            "## nbkit chat\nPick a model (registry runs appear here), then type. Switching model keeps the app up."
        )
        with gr.Row():
            model = gr.Dropdown(backend.choices(), value=backend.default_models[0], label="Model", scale=4)
            refresh = gr.Button("Refresh list", scale=1)
        chatbot = gr.Chatbot(label="Conversation", height=420)
        stats = gr.Markdown("", elem_id="stats")
        msg = gr.Textbox(label="Message", placeholder="Ask something, then press Enter", max_lines=8)
        with gr.Row():
            send = gr.Button("Send", variant="primary")
            stop = gr.Button("Stop")
            clear = gr.Button("Clear")
        with gr.Accordion("Settings", open=False):
            system = gr.Textbox(label="System prompt", value="")
            temperature = gr.Slider(0.0, 2.0, value=0.7, step=0.05, label="Temperature (0 = greedy)")
            top_p = gr.Slider(0.05, 1.0, value=0.95, step=0.05, label="Top-p")
            max_new = gr.Slider(
                1, cfg.max_new_tokens, value=cfg.default_new_tokens, step=1, label="Max new tokens"
            )
            stop_strings = gr.Textbox(label="Stop strings (comma-separated)", value="")

        inputs = [msg, chatbot, model, system, temperature, top_p, max_new, stop_strings]
        outputs = [chatbot, stats, msg]
        chat = ui_errors(backend.chat)
        sent = send.click(chat, inputs, outputs, api_name="chat")
        entered = msg.submit(chat, inputs, outputs, api_name=False)
        stop.click(None, None, None, cancels=[sent, entered], api_name=False)
        clear.click(lambda: ([], ""), None, [chatbot, stats], api_name="clear")
        refresh.click(lambda: gr.Dropdown(choices=backend.choices()), None, model, api_name="models")
    return demo
