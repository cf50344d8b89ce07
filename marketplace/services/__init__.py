"""Use cases per bounded context: load -> command -> save, one rhythm everywhere."""
