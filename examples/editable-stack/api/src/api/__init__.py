"""The API of the editable-stack example; it uses `core`."""

from core import greeting


def handle(name: str) -> str:
    """Answers a request with core's greeting."""
    return greeting(name).upper()
