"""The one exception type for mistakes a user can fix: the CLI prints it as a single line."""


class UserError(ValueError):
    """Bad input (paths, config keys, checkpoints): the message says what was wrong and the fix."""
