"""The one exception type that means "the user can fix this"."""


class InceValError(Exception):
    """A user-fixable problem: bad option, bad file, mismatched checkpoint or store.

    The message is a single line saying what went wrong and what to do. The CLI prints it as
    ``error: <message>`` on stderr and exits with status 2; any other exception is a bug.
    """
