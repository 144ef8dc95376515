"""The operators' web console (`guard.console.routes`)."""
