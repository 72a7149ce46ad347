"""Tasks: arithmetic (generated), GSM8K-format and CommonsenseQA-format (loaded). See base.Task for the interface."""

from nbkit.tasks.arithmetic import Arithmetic
from nbkit.tasks.base import Example, Task, TaskError, accuracy_table, completion_text
from nbkit.tasks.gsm8k import GSM8K
from nbkit.tasks.multiple_choice import MultipleChoice

FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures"
TASKS = {"arithmetic": Arithmetic, "gsm8k": GSM8K, "multiple_choice": MultipleChoice}


def get_task(name: str, **kwargs) -> Task:
    """Build a task by name. Example: get_task("gsm8k", source="fixtures/gsm8k_sample.jsonl")."""
    if name not in TASKS:
        raise TaskError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    return TASKS[name](**kwargs)


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
    "get_task",
]
