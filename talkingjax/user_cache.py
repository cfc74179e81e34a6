"""The one folder where talkingjax keeps files across runs for the user.

`$XDG_CACHE_HOME/talkingjax`, or `~/.cache/talkingjax`: the personalisation cache
(`talkingjax.generation.cache`), the persistent compilation cache (`compilation_cache`, under
`xla/`) and the synthetic data a remote workdir's hosts make locally
(`talkingjax.train.storage.local_data_dir`, under `generated/`). Any of it may be deleted.
"""

from __future__ import annotations

import os


def path(*parts: str) -> str:
    """The absolute path of `parts` inside the user's talkingjax cache folder (read from the
    environment at each call)."""
    home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(os.path.abspath(home), "talkingjax", *parts)
