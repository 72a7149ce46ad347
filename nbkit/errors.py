"""One base class for the errors nbkit raises on purpose. Their message is one line that says what to change; the
CLI and the apps print it instead of a traceback."""


class NbkitError(Exception):
    """A clear, expected failure: bad input, a missing model, a name collision, no network."""


class ConfigError(NbkitError, ValueError):
    """An experiment config that cannot work (e.g. zero problems, a fraction outside [0, 1])."""


class ServeError(NbkitError):
    """A request the app server refuses (unknown model, input too long, ...); the message says what to change."""


class RunError(NbkitError):
    """A registry operation was refused; the message says why and what to do."""
