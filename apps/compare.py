"""The arena: blind A/B battles, side by side, token view, leaderboard and batch accuracy. Layout and event wiring
only; the logic is nbkit.serve.backend.Backend, nbkit.serve.arena and nbkit.serve.leaderboard.

    nbkit compare base-sft star-it1 star-it2      # the blind pool: the models given here

Blind battles follow FastChat's arena: the server draws two hidden models from its pool, the conversation may go
on for several turns, the vote buttons wake up once both answers are complete, one vote per round, then "New
round". Side-by-side and token-view answers name their models and never count as votes.
"""

import gradio as gr

from nbkit.serve.arena import batch_choices
from nbkit.serve.backend import Backend
from nbkit.serve.limits import RANGES
from nbkit.serve.ui import Blocks, ui_errors, ui_warn

MAX_SIDE = 4
VOTES = [("left", "A is better"), ("right", "B is better"), ("tie", "Tie"), ("both_bad", "Both bad")]


def build(backend: Backend) -> gr.Blocks:
    cfg, lim = backend.cfg, backend.limits
    choices = backend.choices()
    defaults = backend.default_models if len(backend.default_models) >= 2 else choices[:2]

    with Blocks(title="nbkit arena") as demo:
        gr.Markdown("## nbkit arena\nCompare checkpoints: blind votes feed the leaderboard.")
        with gr.Accordion("Generation settings", open=False):
            system = gr.Textbox(label="System prompt", value="", max_length=cfg.max_input_chars)
            temperature = gr.Slider(
                *RANGES["temperature"], value=0.7, step=0.05, label="Temperature (0 = greedy)"
            )
            top_p = gr.Slider(*RANGES["top_p"], value=0.95, step=0.05, label="Top-p")
            max_new = gr.Slider(
                1, cfg.max_new_tokens, value=cfg.default_new_tokens, step=1, label="Max new tokens"
            )
        settings = [system, temperature, top_p, max_new]

        with gr.Tab("Blind A/B"):
            with gr.Row():
                code = gr.Textbox(
                    label="Your join code (from your instructor; needed to vote)"
                    if backend.attendees.required
                    else "Your name (optional: lets the instructor count votes per person)",
                    value="",
                    elem_id="join-code",
                    max_length=60,
                    scale=2,
                )
                joined = gr.Markdown("", elem_id="joined")
            saved_code = gr.BrowserState("", storage_key="nbkit-arena-join-code")  # typed once per browser
            pool_line = gr.Markdown(backend.pool_text(), elem_id="pool")
            gr.Markdown(
                "Chat as long as you like, then vote (blind answers are sampled, temperature at least "
                f"{backend.BLIND_MIN_TEMPERATURE}). One vote per round."
            )
            with gr.Row():
                chat_a = gr.Chatbot(label="Model A", height=320, elem_id="chat-a", buttons=["copy"])
                chat_b = gr.Chatbot(label="Model B", height=320, elem_id="chat-b", buttons=["copy"])
            with gr.Row():
                prompt = gr.Textbox(
                    label="Prompt",
                    placeholder="Ask both models something",
                    elem_id="blind-prompt",
                    scale=4,
                    max_length=cfg.max_input_chars,
                )
                ask = gr.Button("Send", variant="primary", elem_id="ask", scale=1)
            with gr.Row():
                vote_buttons = [gr.Button(text, elem_id=f"vote-{o}", interactive=False) for o, text in VOTES]
                new_round = gr.Button("New round", elem_id="new-round")
            reveal = gr.Markdown("", elem_id="reveal")
            board_small = gr.Dataframe(
                backend.leaderboard(), label="Leaderboard", interactive=False, elem_id="board"
            )
            rnd = gr.State(None)

        with gr.Tab("Side by side"):
            gr.Markdown("The same prompt to 2-4 named models at once. These answers are never votes.")
            models = gr.CheckboxGroup(choices, value=defaults, label=f"Models (2 to {MAX_SIDE})")
            side_prompt = gr.Textbox(label="Prompt", max_length=cfg.max_input_chars)
            run_side = gr.Button("Ask all", variant="primary")
            timing = gr.Markdown("")
            with gr.Row():
                side_out = [
                    gr.Textbox(label=f"Answer {i + 1}", lines=10, interactive=False) for i in range(MAX_SIDE)
                ]
            last = gr.State({"prompt": "", "labels": [], "answers": []})

        with gr.Tab("Token view"):
            gr.Markdown(
                "Needs a side-by-side run first: it scores the answers of that run, token by token, under every "
                "model of the run (about a second per model and answer here). Darker = the models disagree more "
                "about that token."
            )
            score = gr.Button("Score the last side-by-side answers")
            views = [gr.HighlightedText(label=f"Answer {i + 1}", show_legend=False) for i in range(MAX_SIDE)]
            token_table = gr.Dataframe(label="Largest disagreements", interactive=False)

        with gr.Tab("Leaderboard"):
            method = gr.Radio([("Bradley-Terry", "bt"), ("Elo", "elo")], value="bt", label="Ratings")
            board = gr.Dataframe(
                backend.leaderboard(),
                label="95% intervals; models whose intervals overlap share a rank",
                interactive=False,
                elem_id="full-board",
            )
            notes = gr.Markdown(backend.board_notes(), elem_id="board-notes")
            with gr.Row():
                win_rate, counts = backend.matrices()
                win_table = gr.Dataframe(win_rate, label="Win rate of the row model against the column model")
                count_table = gr.Dataframe(counts, label="Battles between them")
            refresh = gr.Button("Refresh")

        with gr.Tab("Instructor"):
            gr.Markdown(
                "Add a model to the blind pool while the arena runs, e.g. the model the room's votes just trained "
                "(`nbkit runs list` names it). New rounds include it at once; the leaderboard shows whether the "
                "room prefers it. Needs the instructor password (`NBKIT_INSTRUCTOR` where the server started)."
            )
            with gr.Row():
                new_model = gr.Dropdown(
                    choices, value=None, allow_custom_value=True, label="Model or run", elem_id="new-model"
                )
                password = gr.Textbox(label="Instructor password", type="password", elem_id="instructor-pw")
            add = gr.Button("Add to the blind pool", elem_id="add-model")
            added = gr.Markdown("", elem_id="added")

        with gr.Tab("Batch"):
            gr.Markdown(
                "Scores each selected model on the same test examples of a task, greedy. Each example x model is "
                f"one answer (about a second here); one request runs at most {lim.max_batch_work} answers."
            )
            batch_models = gr.CheckboxGroup(choices, value=defaults, label="Models")
            with gr.Row():
                task = gr.Dropdown(batch_choices(), value="arithmetic", label="Task")
                n = gr.Slider(
                    1, lim.max_batch_work, value=min(20, lim.max_batch_work), step=1, label="Examples"
                )
            run_batch = gr.Button("Evaluate", variant="primary")
            batch_table = gr.Dataframe(label="Accuracy (greedy)", interactive=False)

        # ---- wiring
        def blind(text, current, system, temperature, top_p, max_new, who, request: gr.Request):
            current = backend.blind_round(current, who, request)  # a voted round is never continued
            turn = backend.blind_turn(text, current, system, temperature, top_p, max_new, request=request)
            for a, b, r, done in turn:
                yield a, b, r, *[gr.Button(interactive=done) for _ in VOTES], ("" if done else gr.skip())

        blind_in, blind_out = [prompt, rnd, *settings, code], [chat_a, chat_b, rnd, *vote_buttons, prompt]
        ask.click(ui_warn(blind, len(blind_out)), blind_in, blind_out, api_name="blind")
        prompt.submit(ui_warn(blind, len(blind_out)), blind_in, blind_out, api_name=False)

        def boards(m):
            return backend.leaderboard(), backend.leaderboard(m), backend.board_notes(m), *backend.matrices()

        all_boards = [board_small, board, notes, win_table, count_table]

        def voter(outcome):
            def vote(r, who, request: gr.Request):
                return backend.vote(r, outcome, request, who)

            return vote

        # The buttons go off at the click; the vote itself only writes the reveal, never the round state, so a
        # vote answered after "New round" and the next question cannot bring the voted round back.
        for (outcome, _), button in zip(VOTES, vote_buttons):
            button.click(
                lambda: [gr.Button(interactive=False) for _ in VOTES], None, vote_buttons, queue=False
            ).then(ui_warn(voter(outcome), 1), [rnd, code], reveal, api_name=f"vote_{outcome}").then(
                ui_warn(boards, len(all_boards)), method, all_boards, api_name=False
            )

        def join(who, request: gr.Request):
            name = backend.attendee(who, request)
            return who, (f"Voting as **{name}**." if name else "")

        code.blur(ui_warn(join, 2), code, [saved_code, joined], api_name=False)
        code.submit(ui_warn(join, 2), code, [saved_code, joined], api_name=False)
        # a page opened later shows the votes as they are now, and the join code this browser typed before
        demo.load(ui_warn(boards, len(all_boards)), method, all_boards, api_name=False)
        demo.load(lambda saved: saved, saved_code, code, api_name=False)

        def fresh():
            return None, [], [], "", *[gr.Button(interactive=False) for _ in VOTES]

        new_round.click(fresh, None, [rnd, chat_a, chat_b, reveal, *vote_buttons], api_name="new_round")

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

        score.click(ui_warn(tokens, MAX_SIDE + 1), last, [*views, token_table], api_name="token_view")

        def full_board(m):
            return backend.leaderboard(m), backend.board_notes(m), *backend.matrices()

        board_out = [board, notes, win_table, count_table]
        refresh.click(ui_warn(full_board, 4), method, board_out, api_name="leaderboard")
        method.change(ui_warn(full_board, 4), method, board_out, api_name=False)
        run_batch.click(ui_warn(backend.batch, 1), [batch_models, task, n], batch_table, api_name="batch")

        def add_model(label, pw):
            line = backend.add_to_pool(label, pw)
            return line, f"Added **{label}**. {line}"

        add.click(ui_warn(add_model, 2), [new_model, password], [pool_line, added], api_name="add_to_pool")
        # a page opened after a hot-add shows the pool as it is now
        demo.load(backend.pool_text, None, pool_line, api_name=False)
    return demo
