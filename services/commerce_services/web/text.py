"""Text a client may send: strings (never a number or a bool coerced into one) without control
characters, the rule stated in the OpenAPI `pattern` so clients see it.

No control character belongs in a name, a title or a search, and some break what stores or
indexes the text: the document store's PostgreSQL backend cannot keep a NUL, Elasticsearch's
completion suggester refuses U+001F. Refused with a 422 at the edge instead of failing deeper
down. Lone surrogates never get this far: pydantic refuses them in every string.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, StrictStr

# C0 and C1 control characters and DEL; the second set keeps tab, line feed and carriage return
# (a description has paragraphs).
_CONTROLS = r"\x00-\x1f\x7f-\x9f"
_CONTROLS_BUT_LINE_BREAKS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
SINGLE_LINE = rf"^[^{_CONTROLS}]*$"
MULTI_LINE = rf"^[^{_CONTROLS_BUT_LINE_BREAKS}]*$"
_CONTROL = re.compile(f"[{_CONTROLS}]")
_CONTROL_BUT_LINE_BREAKS = re.compile(f"[{_CONTROLS_BUT_LINE_BREAKS}]")

SingleLineText = Annotated[StrictStr, Field(pattern=SINGLE_LINE)]
MultiLineText = Annotated[StrictStr, Field(pattern=MULTI_LINE)]


def has_control_characters(text: str, *, line_breaks_allowed: bool = False) -> bool:
    """For text that does not come through a pydantic model (a raw query string)."""
    found = (_CONTROL_BUT_LINE_BREAKS if line_breaks_allowed else _CONTROL).search(text)
    return found is not None
