"""nbkit: learn LLM post-training by doing it. Helpers behind the notebooks in notebooks/ and the apps in apps/."""

__version__ = "0.1.0"

from nbkit.threads import configure as _configure_threads

_configure_threads()  # before torch loads OpenMP: waiting threads sleep instead of spinning (nbkit/threads.py)
