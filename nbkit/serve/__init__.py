"""The apps' side: what `nbkit chat` and `nbkit compare` (apps/*.py, layout and wiring only) call.

    launch.py       launching an app by name: auth and share policy, login throttle, uploads off; `nbkit chat|compare`
    backend.py      what the apps call: chat turns, blind rounds, side by side, batch evaluation, JSON export
    catalog.py      which models a client may pick (an allow-list), and the memory-capped model cache
    engine.py       one generation engine for every answer: continuous batching across users, per model
    streaming.py    token streaming: one answer, or several models at once
    limits.py       a cap on every input (stop strings, history, batch, logins, votes per minute)
    arena.py        server-made blind rounds, one vote each (SQLite), Elo and Bradley-Terry with intervals
    leaderboard.py  what few votes can say: votes needed to separate two models, position bias, win-rate matrices
    votes.py        decided blind rounds -> a preference dataset (TRL's prompt/chosen/rejected), with its snapshot
    audit.py        are the votes worth training on: votes per voter, one-sided voters, position bias, cycles
    tokenview.py    per-token disagreement between models on the same answer
    ui.py           the Gradio glue: refused requests shown as messages or toasts

It imports the core (models, sampling, tasks, runs) and never the experiments or the workshop.
"""
