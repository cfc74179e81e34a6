"""The one exception type for bad user input.

Entry points turn an `InputError` into a single line on stderr and a non-zero exit, so a
user sees *what* was wrong with *which* file rather than a traceback.
"""


class InputError(ValueError):
    """Raised for unusable input: missing/corrupt/silent audio, bad pose clips, bad configs."""
