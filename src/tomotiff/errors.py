"""The one exception type that reaches users as a one-line message.

Anything raised as :class:`TomotiffError` is bad input or a failed environment that the
user can fix; the CLIs print it as one line on stderr and exit with code 2. Any other
exception is a bug and keeps its traceback.
"""


class TomotiffError(Exception):
    """A problem the user can fix; the message says what is wrong and how to fix it."""
