"""The administrator's pages for accounts: list, add, reset a password, disable."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Engine

from coso.access import MANAGE_USERS, Access
from coso.clock import Clock
from coso.errors import InputError
from coso.units import unit_names
from coso.users import (
    ROLES,
    add_user,
    disable_user,
    list_users,
    set_password,
    temporary_password,
)
from dispatcher.web.console import Pages


def users_router(engine: Engine, page: Pages, signed_in: object, clock: Clock) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def show(
        request: Request, message: str | None = None, error: str | None = None
    ) -> HTMLResponse:
        users = list_users(engine)
        names = unit_names(engine, {c for u in users for c in u.unit_codes})
        context = {
            "users": users,
            "roles": ROLES,
            "units": names,
            "message": message,
            "error": error,
        }
        return page(request, "users.html", context, status=400 if error else 200)

    @router.get("/users", response_class=HTMLResponse)
    def users(request: Request, access: Access = Depends(signed_in)) -> HTMLResponse:  # type: ignore[arg-type]
        access.require(MANAGE_USERS)
        return show(request)

    @router.post("/users", response_class=HTMLResponse)
    def add(
        request: Request,
        login: str = Form(""),
        name: str = Form(""),
        role: list[str] = Form([]),
        units: str = Form(""),
        phone: str = Form(""),
        access: Access = Depends(signed_in),  # type: ignore[arg-type]
    ) -> HTMLResponse:
        access.require(MANAGE_USERS)
        password = temporary_password()
        try:
            user = add_user(
                engine,
                login=login,
                name=name,
                password=password,
                roles=role,
                unit_codes=[c for c in units.replace(",", " ").split() if c],
                phone=phone or None,
                now=clock.now(),
                must_change_password=True,
            )
        except InputError as exc:
            return show(request, error=str(exc))
        return show(
            request,
            message=f"Đã thêm {user.login}. Mật khẩu tạm (chỉ hiện một lần): {password}",
        )

    @router.post("/users/{login}/reset", response_class=HTMLResponse)
    def reset(request: Request, login: str, access: Access = Depends(signed_in)) -> HTMLResponse:  # type: ignore[arg-type]
        access.require(MANAGE_USERS)
        password = temporary_password()
        try:
            set_password(engine, login, password, clock.now(), must_change=True)
        except InputError as exc:
            return show(request, error=str(exc))
        return show(request, message=f"Mật khẩu tạm của {login} (chỉ hiện một lần): {password}")

    @router.post("/users/{login}/disable", response_class=HTMLResponse)
    def disable(
        request: Request,
        login: str,
        enable: str = Form(""),
        access: Access = Depends(signed_in),  # type: ignore[arg-type]
    ) -> HTMLResponse:
        access.require(MANAGE_USERS)
        if login == access.login and not enable:
            return show(request, error="Không thể tự khóa tài khoản của mình.")
        try:
            user = disable_user(engine, login, clock.now(), disabled=not enable)
        except InputError as exc:
            return show(request, error=str(exc))
        return show(
            request, message=f"{user.login}: {'đã khóa' if user.disabled else 'đã mở khóa'}"
        )

    return router
