"""The one exception type for bad user input: its message is a single line naming the file, key or line."""


class ConfigError(ValueError):
    """Bad configuration or input data, raised before any training starts."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
