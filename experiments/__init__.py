"""Entry points: `python -m experiments.<name>`; each is a thin wrapper over the library."""
