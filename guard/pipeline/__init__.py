"""The request path after parsing: `guard.Guard.handle` runs the input check, then the `json` or `stream`
path (upstream → output check), with `shadow` mirroring to upstream B for live A/B."""
