"""The one exception type that reaches the user as a one-line message.

Contract: raise `UserError("what is wrong; how to fix it")` for any bad input
(unknown task, missing file, bad YAML, ...). The CLI prints `error: <message>`
on stderr and exits with code 2, without a traceback. Everything else is a bug
and keeps its traceback.
"""


class UserError(Exception):
    """Bad input from the user. The message names the problem and the fix, on one line."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
