"""What a schedule of the file reaches once the file is written: the enabled endpoints of its
channel in the database and the file's new ones, chosen as the timer will choose them
(channels.endpoints.resolve_targets) — by address, by group (the database's or the file's)
and by administrative unit."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from channels.endpoints import Endpoint, EndpointGroup, GroupMember
from coso.errors import InputError
from schedules.plan_import.checker import Context
from schedules.planfile import TargetSpec


@dataclass(frozen=True)
class Reached:
    """An endpoint as a content template sees it."""

    address: str
    name: str
    unit_code: str | None


@dataclass(frozen=True)
class _Group:
    units: tuple[str, ...]
    members: frozenset[str]  # addresses


class Reach:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._endpoints: dict[str, dict[str, Reached]] = {}
        self._groups: dict[str, _Group | None] = {}

    def endpoints(self, channel: str) -> dict[str, Reached]:
        """address → endpoint, for the enabled endpoints of `channel` after the import."""
        found = self._endpoints.get(channel)
        if found is not None:
            return found
        table = Endpoint.__table__
        with self.ctx.engine.connect() as conn:
            rows = conn.execute(
                select(table.c.address, table.c.name, table.c.unit_code, table.c.enabled).where(
                    table.c.channel == channel
                )
            ).all()
        known = {r.address for r in rows}
        found = {r.address: Reached(r.address, r.name, r.unit_code) for r in rows if r.enabled}
        for ep in self.ctx.pf.endpoints:
            if ep.channel == channel and ep.address not in known:  # new: written enabled
                found[ep.address] = Reached(ep.address, ep.name, self._unit(ep.unit))
        self._endpoints[channel] = found
        return found

    def resolve(self, channel: str, spec: TargetSpec) -> list[Reached]:
        endpoints = self.endpoints(channel)
        chosen = {a for a in spec.endpoints if a in endpoints}
        units = set(spec.units)
        for name in spec.groups:
            group = self._group(name)
            if group is not None:
                units.update(group.units)
                chosen.update(a for a in group.members if a in endpoints)
        covered: set[str] = set()
        for code in units:
            try:
                covered |= self.ctx.units.below(code)
            except InputError:
                continue  # reported with the targets
        chosen.update(a for a, ep in endpoints.items() if ep.unit_code in covered)
        return [endpoints[a] for a in sorted(chosen)]

    def _unit(self, code: str | None) -> str | None:
        if not code:
            return None
        try:
            return self.ctx.units.current_for(code)
        except InputError:
            return None  # reported with the endpoint

    def _group(self, name: str) -> _Group | None:
        if name in self._groups:
            return self._groups[name]
        found = None
        for group in self.ctx.pf.groups:
            if group.name == name:
                found = _Group(tuple(group.units), frozenset(group.endpoints))
                break
        else:
            groups, members, endpoints = (
                EndpointGroup.__table__,
                GroupMember.__table__,
                Endpoint.__table__,
            )
            with self.ctx.engine.connect() as conn:
                row = conn.execute(select(groups).where(groups.c.name == name)).first()
                if row is not None:
                    addresses = conn.scalars(
                        select(endpoints.c.address)
                        .join(members, members.c.endpoint_id == endpoints.c.id)
                        .where(members.c.group_id == row.id)
                    )
                    found = _Group(tuple(row.unit_codes or ()), frozenset(addresses))
        self._groups[name] = found
        return found
