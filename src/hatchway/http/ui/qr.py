"""QR codes for the web UI (``segno``): an SVG as a ``data:`` URI for an ``<img>``, which
the page's CSP allows (``img-src 'self' data:``) without inline styles or scripts.

Dark modules on a white ground with the standard quiet zone, whatever the page's theme:
phone cameras read that best.
"""

from __future__ import annotations

import segno


def qr_data_uri(text: str) -> str:
    code = segno.make(text, error="m", micro=False)
    uri: str = code.svg_data_uri(scale=5, border=4, dark="#000", light="#fff")
    return uri
