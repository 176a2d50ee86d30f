"""Shared models and database access for the editable-stack example."""


def greeting(name: str) -> str:
    """Edit this and `api` sees the change without reinstalling."""
    return f"hello, {name}"
