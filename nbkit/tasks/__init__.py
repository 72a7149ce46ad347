"""Tasks: arithmetic (generated), GSM8K-format and CommonsenseQA-format (loaded). See base.Task for the interface."""

from nbkit.tasks.arithmetic import Arithmetic
from nbkit.tasks.base import Example, Task, TaskError, accuracy_table, completion_text
from nbkit.tasks.gsm8k import GSM8K
from nbkit.tasks.multiple_choice import MultipleChoice

FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures"
TASKS = {"arithmetic": Arithmetic, "gsm8k": GSM8K, "multiple_choice": MultipleChoice}


def make_task(name: str, /, **args) -> Task:
    """The task an experiment's config names, the one way every experiment builds it; a bad name or argument is a
    one-line ConfigError. A `source` (GSM8K, multiple choice) may be a file, a file under nbkit/tasks/fixtures, or a
    hub dataset name.

    Example: make_task("arithmetic", digits=(1, 2), seed=0); make_task("gsm8k", source="gsm8k_sample.jsonl").
    """
    from pathlib import Path

    from nbkit.errors import ConfigError, NbkitError

    source = args.get("source")
    if (
        isinstance(source, (str, Path))
        and not Path(source).expanduser().is_file()
        and (FIXTURES / source).is_file()
    ):
        args["source"] = FIXTURES / source
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    try:
        return TASKS[name](**args)
    except NbkitError as e:
        raise ConfigError(f"task {name!r} with {args}: {e}") from e
    except TypeError as e:
        raise ConfigError(f"task {name!r} does not take arguments {args}: {e}") from e


__all__ = [
    "Arithmetic",
    "GSM8K",
    "MultipleChoice",
    "Example",
    "Task",
    "TaskError",
    "FIXTURES",
    "TASKS",
    "accuracy_table",
    "completion_text",
    "make_task",
]
