"""The one exception type for mistakes a user can fix: the CLI prints it as a single line."""


class UserError(ValueError):
    """Bad input (paths, config keys, checkpoints): the message says what was wrong and the fix.

    A DataLoader worker hands its exception back as the class called with the whole formatted
    traceback (torch's ``ExceptionWrapper.reraise``); the constructor keeps only our own message
    from it, so an error raised while loading data still prints as one line."""

    def __init__(self, msg: str = ""):
        if "\n" in msg:
            lines = [line for line in msg.splitlines() if "Error: " in line]
            msg = lines[-1].split("Error: ", 1)[1].strip() if lines else msg.strip().splitlines()[-1]
        super().__init__(msg)
