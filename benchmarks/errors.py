"""The engine's one user-facing error type."""


class BadInput(Exception):
    """Bad user input (unknown name, invalid value, malformed suite file, ...).

    The message is one line naming the problem; the CLI prints it and exits with code 2 before anything is
    written.
    """
