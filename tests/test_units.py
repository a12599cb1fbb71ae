"""Administrative units: the current list, legacy units with their mapping, selection by unit."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from channels.endpoints import add_endpoints, resolve_targets
from coso.errors import InputError
from coso.units import AdminUnit, count_units, import_legacy_units, resolve_unit_codes

LEGACY = """code,name,kind,level,parent_code,new_codes
20,Tỉnh Lạng Sơn,tỉnh,1,,20
178,Huyện Tràng Định,huyện,2,20,06040;06046
06043,Xã Cũ Một,xã,3,178,06040
"""


def test_current_units_are_34_provinces_and_3321_communes(engine: Engine) -> None:
    with engine.connect() as conn:
        levels = dict(
            conn.execute(
                select(AdminUnit.level, func.count())
                .where(AdminUnit.dataset == "2025")
                .group_by(AdminUnit.level)
            ).all()
        )
    assert levels == {1: 34, 3: 3321}
    assert len(resolve_unit_codes(engine, ["20"])["20"]) == 1 + 65  # Lạng Sơn and its communes


def test_legacy_units_map_to_current_ones_for_selection(engine: Engine, tmp_path: Path) -> None:
    csv = tmp_path / "legacy.csv"
    csv.write_text(LEGACY, encoding="utf-8")
    assert import_legacy_units(engine, csv) == 3
    assert count_units(engine)["pre-2025"] == 3
    assert resolve_unit_codes(engine, ["178"])["178"] == {"06040", "06046"}
    now = datetime.now(UTC)
    add_endpoints(
        engine,
        [
            {"channel": "web", "address": f"bulletin:{c}", "unit_code": c}
            for c in ("06040", "06046", "06112")
        ],
        now,
    )
    chosen = resolve_targets(engine, "web", {"units": ["178"]})
    assert sorted(unit for _, unit in chosen) == ["06040", "06046"]


def test_legacy_file_with_unknown_new_code_imports_nothing(engine: Engine, tmp_path: Path) -> None:
    csv = tmp_path / "legacy.csv"
    csv.write_text(LEGACY + "06044,Xã Cũ Hai,xã,3,178,99999\n", encoding="utf-8")
    with pytest.raises(InputError) as error:
        import_legacy_units(engine, csv)
    assert "legacy.csv:5: new_codes = '99999': is not a current unit code" in str(error.value)
    assert "pre-2025" not in count_units(engine)


def test_unknown_unit_code_is_refused(engine: Engine) -> None:
    with pytest.raises(InputError, match="unit = '12345': is not a known administrative unit"):
        resolve_unit_codes(engine, ["12345"])


def test_endpoint_in_a_legacy_unit_that_split_must_name_a_current_one(
    engine: Engine, tmp_path: Path
) -> None:
    from channels.endpoints import read_endpoints_csv

    legacy = tmp_path / "legacy.csv"
    legacy.write_text(LEGACY, encoding="utf-8")
    import_legacy_units(engine, legacy)
    endpoints = tmp_path / "endpoints.csv"
    endpoints.write_text("channel,address,name,unit\nweb,bulletin:a,,06043\nweb,bulletin:b,,178\n")
    with pytest.raises(InputError) as error:
        read_endpoints_csv(engine, endpoints)
    assert "endpoints.csv:3: unit = '178': legacy unit became several current units" in str(
        error.value
    )
    endpoints.write_text("channel,address,name,unit\nweb,bulletin:a,,06043\n")
    assert read_endpoints_csv(engine, endpoints)[0]["unit_code"] == "06040"
