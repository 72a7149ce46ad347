"""The workshop's side: what an instructor and the notebooks use beyond the experiments themselves.

    report.py       execute the notebooks headless (nbclient) into reports/<profile>/, with summary.json
    summary.py      each notebook's claims, numbers and curves -> summary.json; prose numbers checked against it
    exercises.py    "your turn" exercises, checked against nbkit's own implementations; show_solution
    archive.py      export runs to a tar file and import them into another registry (the slow-laptop path)

It sits on top: it may import the core and the experiments; nothing below imports it.
"""
