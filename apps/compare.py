"""The arena: blind A/B votes, side by side, token view, leaderboard and batch accuracy. Layout and event wiring
only; the logic is nbkit.serve.Backend and nbkit.arena.

    nbkit compare base-sft star-it1 star-it2      # any registry runs, short names or checkpoint folders
"""

import gradio as gr

from nbkit.serve import Backend, ui_errors
from nbkit.tasks import TASKS

MAX_SIDE = 4
VOTES = [("left", "A is better"), ("right", "B is better"), ("tie", "Tie"), ("both_bad", "Both bad")]


def build(backend: Backend) -> gr.Blocks:
    cfg = backend.cfg
    choices = backend.choices()
    defaults = backend.default_models if len(backend.default_models) >= 2 else choices[:2]

    with gr.Blocks(title="nbkit arena") as demo:
        gr.Markdown("## nbkit arena\nCompare checkpoints: blind votes feed the leaderboard.")
        with gr.Accordion("Generation settings", open=False):
            system = gr.Textbox(label="System prompt", value="")
            temperature = gr.Slider(0.0, 2.0, value=0.7, step=0.05, label="Temperature (0 = greedy)")
            top_p = gr.Slider(0.05, 1.0, value=0.95, step=0.05, label="Top-p")
            max_new = gr.Slider(
                1, cfg.max_new_tokens, value=cfg.default_new_tokens, step=1, label="Max new tokens"
            )
        settings = [system, temperature, top_p, max_new]

        with gr.Tab("Blind A/B"):
            pool = gr.CheckboxGroup(choices, value=defaults, label="Pool: two of these are drawn at random")
            prompt = gr.Textbox(
                label="Prompt", placeholder="Ask both models something", elem_id="blind-prompt"
            )
            ask = gr.Button("Ask two hidden models", variant="primary", elem_id="ask")
            with gr.Row():
                answer_a = gr.Textbox(label="Model A", lines=8, interactive=False, elem_id="answer-a")
                answer_b = gr.Textbox(label="Model B", lines=8, interactive=False, elem_id="answer-b")
            with gr.Row():
                vote_buttons = [gr.Button(text, elem_id=f"vote-{o}") for o, text in VOTES]
            reveal = gr.Markdown("", elem_id="reveal")
            board_small = gr.Dataframe(
                backend.leaderboard(), label="Leaderboard", interactive=False, elem_id="board"
            )
            rnd = gr.State(None)

        with gr.Tab("Side by side"):
            models = gr.CheckboxGroup(choices, value=defaults, label=f"Models (2 to {MAX_SIDE})")
            side_prompt = gr.Textbox(label="Prompt")
            run_side = gr.Button("Ask all", variant="primary")
            timing = gr.Markdown("")
            with gr.Row():
                side_out = [
                    gr.Textbox(label=f"Answer {i + 1}", lines=10, interactive=False) for i in range(MAX_SIDE)
                ]
            last = gr.State({"prompt": "", "labels": [], "answers": []})

        with gr.Tab("Token view"):
            gr.Markdown(
                "Log-prob of each token of the last side-by-side answers under every model; darker = the models disagree more."
            )
            score = gr.Button("Score the last answers")
            views = [gr.HighlightedText(label=f"Answer {i + 1}", show_legend=False) for i in range(MAX_SIDE)]
            token_table = gr.Dataframe(label="Largest disagreements", interactive=False)

        with gr.Tab("Leaderboard"):
            method = gr.Radio([("Bradley-Terry", "bt"), ("Elo", "elo")], value="bt", label="Ratings")
            board = gr.Dataframe(backend.leaderboard(), label="95% bootstrap intervals", interactive=False)
            refresh = gr.Button("Refresh")

        with gr.Tab("Batch"):
            batch_models = gr.CheckboxGroup(choices, value=defaults, label="Models")
            with gr.Row():
                task = gr.Dropdown(list(TASKS), value="arithmetic", label="Task")
                n = gr.Slider(1, 200, value=20, step=1, label="Examples")
            run_batch = gr.Button("Evaluate", variant="primary")
            batch_table = gr.Dataframe(label="Accuracy (greedy)", interactive=False)

        # ---- wiring
        blind = ui_errors(backend.blind_round)
        ask.click(lambda: "", None, reveal, api_name=False).then(
            blind, [prompt, pool, *settings], [answer_a, answer_b, rnd], api_name="blind"
        )

        def voter(outcome):
            def vote(r, request: gr.Request):
                return backend.vote(r, outcome, getattr(request, "session_hash", "") or "")

            return ui_errors(vote)

        for (outcome, _), button in zip(VOTES, vote_buttons):
            button.click(voter(outcome), rnd, [reveal, rnd, board_small], api_name=f"vote_{outcome}").then(
                ui_errors(backend.leaderboard), method, board, api_name=False
            )

        def side(prompt, labels, *s):
            for names, texts, line, done in backend.side_by_side(prompt, labels, *s):
                boxes = [
                    gr.Textbox(value=texts[i], label=names[i], visible=True)
                    if i < len(names)
                    else gr.Textbox(value="", visible=False)
                    for i in range(MAX_SIDE)
                ]
                state = {"prompt": prompt, "labels": names, "answers": texts} if done else gr.skip()
                yield *boxes, line, state

        run_side.click(
            ui_errors(side),
            [side_prompt, models, *settings],
            [*side_out, timing, last],
            api_name="side_by_side",
        )

        def tokens(state):
            highlights, table = backend.token_view(state["prompt"], state["labels"], state["answers"])
            padded = [
                gr.HighlightedText(value=highlights[i], label=state["labels"][i], visible=True)
                if i < len(highlights)
                else gr.HighlightedText(value=None, visible=False)
                for i in range(MAX_SIDE)
            ]
            return *padded, table

        score.click(ui_errors(tokens), last, [*views, token_table], api_name="token_view")
        refresh.click(ui_errors(backend.leaderboard), method, board, api_name="leaderboard")
        method.change(ui_errors(backend.leaderboard), method, board, api_name=False)
        run_batch.click(ui_errors(backend.batch), [batch_models, task, n], batch_table, api_name="batch")
    return demo
