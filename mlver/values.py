"""Values read from params and metrics files, as JSON can hold them: one conversion for
every ``--json`` document, table cell and HTML report (imports nothing of mlver)."""

from __future__ import annotations

from typing import Any


def jsonable(value: Any) -> Any:
    """``value`` (read from a params or metrics file) as JSON can hold it: YAML's dates
    and times as ISO 8601 text, ``!!binary`` bytes as base64 text, ``!!set`` as a sorted
    list; dicts, lists and scalars as they are."""
    import datetime

    if isinstance(value, dict):
        return {str(k) if not isinstance(k, (str, int, float, bool)) and k is not None else k: jsonable(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((jsonable(v) for v in value), key=repr)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        import base64

        return base64.standard_b64encode(value).decode("ascii")
    return value
