"""``djl_python.inputs.Input`` as of djl-serving v0.36.0 (see the package docstring)."""
from __future__ import annotations

import json
from typing import Any


class Input:
    def __init__(self) -> None:
        self.properties: dict[str, str] = {}
        self.content: list[tuple[str | None, bytearray]] = []

    # Test-side constructors: what DJL's reader fills in from the socket.
    @classmethod
    def load_call(cls, model_dir: str, **properties: str) -> "Input":
        """DJL's first call to a worker: model properties, no content."""
        made = cls()
        made.properties = {"model_dir": model_dir, **properties}
        return made

    @classmethod
    def request(cls, body: bytes | str, content_type: str = "application/json") -> "Input":
        made = cls()
        made.properties = {"Content-Type": content_type}
        made.content.append(("data", bytearray(body.encode("utf-8") if isinstance(body, str) else body)))
        return made

    @classmethod
    def request_json(cls, payload: Any) -> "Input":
        return cls.request(json.dumps(payload))

    def get_properties(self) -> dict[str, str]:
        return self.properties

    def get_property(self, key: str) -> str | None:
        return next((v for k, v in self.properties.items() if k.lower() == key.lower()), None)

    def get_as_bytes(self, key: str | None = None) -> bytearray | None:
        if not self.content:
            return None
        if key is not None:
            for name, value in self.content:
                if name == key:
                    return value
            raise KeyError(f"requested data for key:{key} is not found!")
        for name, value in self.content:
            if name == "data":
                return value
        return self.content[0][1]

    def is_empty(self) -> bool:
        return not self.content
