"""``djl_python.outputs.Output`` as of djl-serving v0.36.0 (see the package docstring)."""
from __future__ import annotations

import json
from typing import Any


class _Encoder(json.JSONEncoder):
    def default(self, obj: Any) -> Any:
        import numpy as np

        if isinstance(obj, np.integer):
            return int(obj)
        if isinstance(obj, np.floating):
            return float(obj)
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        return super().default(obj)


class Output:
    def __init__(self, code: int = 200, message: str = "OK") -> None:
        self.code = code
        self.message = message
        self.properties: dict[str, str] = {}
        self.content: list[tuple[str | None, bytearray]] = []

    def set_code(self, code: int) -> "Output":
        self.code = code
        return self

    def set_message(self, message: str) -> "Output":
        self.message = message
        return self

    def add_property(self, key: str, val: str) -> "Output":
        self.properties[key] = val
        return self

    def get_property(self, key: str) -> str | None:
        return self.properties.get(key)

    def add(self, value: Any, key: str | None = None) -> "Output":
        if type(value) is str:
            self.content.append((key, bytearray(value.encode("utf-8"))))
        elif type(value) is bytearray:
            self.content.append((key, value))
        elif type(value) is bytes:
            self.content.append((key, bytearray(value)))
        else:
            self.content.append((key, self._encode_json(value)))
        return self

    def add_as_json(self, val: Any, key: str | None = None) -> "Output":
        return self.add(self._encode_json(val), key=key)

    @staticmethod
    def _encode_json(val: Any) -> bytearray:
        return bytearray(json.dumps(val, ensure_ascii=False, allow_nan=False, cls=_Encoder).encode("utf-8"))

    # Test-side reader: the bytes DJL would send back as the response body.
    def body(self) -> bytes:
        return b"".join(bytes(value) for _key, value in self.content)
