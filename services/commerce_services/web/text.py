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

# C0 and C1 control characters and DEL.
SINGLE_LINE = r"^[^\x00-\x1f\x7f-\x9f]*$"
# The same, but tabs and line breaks are allowed (a description has paragraphs).
MULTI_LINE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

SingleLineText = Annotated[StrictStr, Field(pattern=SINGLE_LINE)]
MultiLineText = Annotated[StrictStr, Field(pattern=MULTI_LINE)]


def has_control_characters(text: str) -> bool:
    """For text that does not come through a pydantic model (a raw query string)."""
    return _CONTROL.search(text) is not None
