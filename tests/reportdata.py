"""Read report.html (or compare.html) the way the browser does: the case table's data is packed
(gzip, then base64) in two <script> elements, the table's data and X, the texts only row details
show. Tests that look for a text in a page, or prove one is absent (secrets), read it through
`readable`, never the packed bytes."""

from __future__ import annotations

import base64
import gzip
import json
import re
from typing import Any

PACKED = re.compile(r'(<script type="application/gzip" id="(llmeval-data|llmeval-details)"[^>]*>)([^<]*)(</script>)')


def payload(html: str, part: str = "llmeval-data") -> str:
    """The packed text of one of the page's two data elements."""
    found = [m.group(3) for m in PACKED.finditer(html) if m.group(2) == part]
    assert len(found) == 1, f"{len(found)} {part} elements"
    return found[0]


def unpack(text: str) -> str:
    return gzip.decompress(base64.b64decode(text, validate=True)).decode("utf-8")


def case_data(html: str) -> dict[str, Any]:
    """The case data, both parts unpacked: the table's, with the details' texts as "X"."""
    data = json.loads(unpack(payload(html)))
    assert isinstance(data, dict) and "X" not in data
    data["X"] = json.loads(unpack(payload(html, "llmeval-details")))
    return data


def readable(html: str) -> str:
    """The page with its packed data replaced by the JSON it holds, for greps that must see every text."""
    assert [m.group(2) for m in PACKED.finditer(html)] == ["llmeval-data", "llmeval-details"]
    return PACKED.sub(lambda m: m.group(1) + unpack(m.group(3)) + m.group(4), html)
