"""A stand-in for DJL Serving's ``djl_python`` handler API (not on PyPI).

It implements exactly the methods the handlers in ``model_packages/`` call, with
the semantics of DJL Serving's own ``djl_python.inputs.Input`` and
``djl_python.outputs.Output`` (0.19-0.25), and nothing more:

``Input``
  - ``is_empty() -> bool``: True for the warm-up/ping call DJL makes with no body.
  - ``get_as_bytes() -> bytearray``: the raw request body (DJL decodes it into a
    ``bytearray``, so handlers must not rely on ``bytes``-only behaviour).
  - ``get_properties() -> dict[str, str]``: the model's properties: the keys of
    ``serving.properties`` with the ``option.`` prefix removed, plus ``model_dir``
    (where the package was unpacked).
  - ``get_property(key) -> str | None``: one request property (headers such as
    ``content-type``).

``Output``
  - ``set_code(int)``, ``set_message(str)``: the HTTP status and reason.
  - ``add_property(key, value)``: a response header (``content-type``).
  - ``add(value)``: append bytes (str is UTF-8 encoded).
  - ``add_as_json(value)``: append ``json.dumps(value)`` as UTF-8.
  Every method returns ``self``, as DJL's does.

Tests read what a handler produced through ``code``, ``message``, ``properties``
and ``body()`` (the appended content joined), the fields DJL encodes on the wire.
"""
from __future__ import annotations

import json
from typing import Any


class Input:
    def __init__(
        self,
        body: bytes | str | None = None,
        *,
        properties: dict[str, str] | None = None,
        request_properties: dict[str, str] | None = None,
    ) -> None:
        self._body = body.encode("utf-8") if isinstance(body, str) else (body or b"")
        self._properties = dict(properties or {})
        self._request_properties = dict(request_properties or {})

    @classmethod
    def json(cls, payload: Any, **kwargs: Any) -> "Input":
        return cls(json.dumps(payload), request_properties={"content-type": "application/json"}, **kwargs)

    def is_empty(self) -> bool:
        return not self._body

    def get_as_bytes(self) -> bytearray:
        return bytearray(self._body)

    def get_properties(self) -> dict[str, str]:
        return self._properties

    def get_property(self, key: str) -> str | None:
        return self._request_properties.get(key)


class Output:
    def __init__(self, code: int = 200, message: str = "OK") -> None:
        self.code = code
        self.message = message
        self.properties: dict[str, str] = {}
        self.content: list[bytes] = []

    def set_code(self, code: int) -> "Output":
        self.code = code
        return self

    def set_message(self, message: str) -> "Output":
        self.message = message
        return self

    def add_property(self, key: str, value: str) -> "Output":
        self.properties[key] = value
        return self

    def add(self, value: bytes | bytearray | str) -> "Output":
        if isinstance(value, str):
            value = value.encode("utf-8")
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"Output.add takes bytes or str in this stand-in, got {type(value).__name__}")
        self.content.append(bytes(value))
        return self

    def add_as_json(self, value: Any) -> "Output":
        self.content.append(json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8"))
        return self

    # Test-side readers (not part of DJL's API).
    def body(self) -> bytes:
        return b"".join(self.content)

    def json_body(self) -> Any:
        return json.loads(self.body())
