"""The public front door stays small and deliberate."""

from __future__ import annotations

import phds


def test_top_level_exports_are_exactly_the_public_api() -> None:
    assert sorted(phds.__all__) == ["PhdsError", "__version__"]
    for name in phds.__all__:
        assert hasattr(phds, name), name
