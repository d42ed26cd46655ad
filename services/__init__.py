"""The use cases of the platform, written once for the pages, the API, the CLI and the
workers: each takes plain arguments (a :class:`services.context.Context`, users, ids, dicts,
file-like streams), acts through the platform's services and raises a ``PlatformError`` when
the input is wrong. Nothing here knows about HTTP (no Flask)."""
