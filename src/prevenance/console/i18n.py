"""The console's languages: the one catalogue mechanism of ``prevenance.common.i18n``."""

from __future__ import annotations

from prevenance.common.i18n import (
    DEFAULT,
    LANGUAGES,
    catalogue,
    choose,
    from_accept_language,
    section,
    translate,
)

__all__ = ["DEFAULT", "LANGUAGES", "catalogue", "choose", "from_accept_language", "section", "translate"]
