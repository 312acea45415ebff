"""One error type for data that is missing or unreachable: its message is one line that says what is
wrong and what to do."""


class DataUnavailableError(RuntimeError):
    pass
