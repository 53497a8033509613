"""Stand-in for DJL Serving's ``djl_python`` package, which is not published on PyPI.

Written from deepjavalibrary/djl-serving at tag v0.36.0 (the multi_model/current
profile's DJL Serving), files ``engines/python/setup/djl_python/inputs.py`` and
``outputs.py``; only the behaviour ``model_packages/sklearn_mme/model.py`` relies on:

``Input``
  - ``get_properties()``: the dict DJL read from the wire. On the first call to
    ``handle`` (DJL's load call, no content) it holds the model's properties,
    among them ``model_dir``.
  - ``get_property(key)``: a property looked up case-insensitively (``Content-Type``
    and ``content-type`` are one key), None when absent.
  - ``get_as_bytes()``: the content named ``data``, else the first; the wire gives
    a ``bytearray``; None when there is no content.
  - ``is_empty()``: True when there is no content.

``Output(code=200, message="OK")``
  - ``set_code``, ``set_message``, ``add_property``: set fields, return self.
  - ``add(value)``: ``str`` is UTF-8 encoded, ``bytes`` become a ``bytearray``,
    anything else is JSON encoded.
  - ``add_as_json(value)``: ``json.dumps(value, ensure_ascii=False, allow_nan=False)``
    (numpy scalars and arrays converted), so a NaN prediction raises ValueError
    in the handler, as it would in the container.
"""
from .inputs import Input
from .outputs import Output

__all__ = ["Input", "Output"]
