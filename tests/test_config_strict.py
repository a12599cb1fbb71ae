"""Unknown keys in nested config sections are refused with the key named."""

from __future__ import annotations

import pytest

from coso.config import load_settings
from coso.errors import InputError


@pytest.mark.parametrize(
    "section", [{"database": {"url": "sqlite:///x.db", "pasword": "x"}}, {"server": {"prot": 1}}]
)
def test_misspelt_nested_key_is_refused_with_the_key_named(section: dict) -> None:
    with pytest.raises(InputError) as refused:
        load_settings(None, **section)
    assert "pasword" in str(refused.value) or "prot" in str(refused.value)
