"""ml_collections configs: `get_config(arg)` returns a ConfigDict; `:tiny` variants run on CPU."""
