"""`GrevalError`: the base of every error that is the user's to fix (a bad flag, file, task,
folder or option). The CLI prints its message on one line and exits 2, never a traceback;
anything else is a bug and says so (`greval --debug` shows the traceback)."""


class GrevalError(Exception):
    """A problem the user can fix; its message says what and how."""
