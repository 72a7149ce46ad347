"""nbkit: learn LLM post-training by doing it. Helpers behind the notebooks in notebooks/ and the apps in apps/."""

__version__ = "0.1.0"
