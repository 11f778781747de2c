"""Helpers of the device-login tests: a token-mode server behind a trusted "proxy" (the
tests themselves, so each test can speak from its own client address), and a person
approving or denying a code on the web UI over plain HTTP (httpx, cookies and CSRF as a
browser sends them)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.support.authkit import ADMIN_PASSWORD, token_config
from tests.support.logins import Home
from tests.support.server import HATCHWAY, Server, start_server

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
USER_CODE = re.compile(r"^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$")
_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
_addresses = iter(range(1, 250))
_CODE = re.compile(r"shows the code ([A-Z]{4}-[A-Z]{4})")
_URL = re.compile(r"^    (http://\S+/ui/device\?user_code=\S+)$", re.MULTILINE)


def start_device_server(tmp: Path, *, workers: int = 1, **device: Any) -> Server:
    doc = json.loads(token_config(device=device))
    doc["http"] = {"trustedproxies": ["127.0.0.1/32"]}
    return start_server(
        tmp,
        workers=workers,
        config=json.dumps(doc),
        env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )


def new_address() -> str:
    """A client address of its own (X-Forwarded-For through the trusted proxy), so no
    test spends another's throttle budget."""
    return f"192.0.2.{next(_addresses)}"


def client(server: Server, address: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url,
        headers={"X-Forwarded-For": address, "User-Agent": "device-tests/1"},
        timeout=30,
    )


def start(http: httpx.Client, client_id: str = "test-cli", **extra: str) -> dict[str, Any]:
    answer = http.post("/auth/device/code", data={"client_id": client_id, **extra})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def poll(http: httpx.Client, device_code: str, client_id: str = "test-cli") -> httpx.Response:
    return http.post(
        "/auth/token",
        data={"grant_type": DEVICE_GRANT, "device_code": device_code, "client_id": client_id},
    )


def csrf(page: httpx.Response) -> str:
    found = _CSRF.search(page.text)
    assert found is not None, page.text[:500]
    return found.group(1)


class Person:
    """Someone signed in to the web UI from ``address``."""

    def __init__(self, server: Server, name: str, password: str, address: str) -> None:
        self.http = client(server, address)
        page = self.http.get("/ui/sign-in")
        signed = self.http.post(
            "/ui/sign-in",
            data={"csrf": csrf(page), "username": name, "password": password, "next": "/ui"},
        )
        assert signed.status_code == 303, signed.text[:500]

    def close(self) -> None:
        self.http.close()

    def enter(self, code: str) -> httpx.Response:
        """Open the page from ``verification_uri_complete`` and submit the code."""
        page = self.http.get("/ui/device", params={"user_code": code}, follow_redirects=True)
        assert page.status_code == 200, page.text[:500]
        assert str(page.url).endswith("/ui/device")  # the code left the address
        return self.http.post("/ui/device", data={"csrf": csrf(page), "user_code": code})

    def decide(self, code: str, *, approve: bool = True) -> httpx.Response:
        shown = self.enter(code)
        assert shown.status_code == 200, shown.text[:500]
        action = "approve" if approve else "deny"
        return self.http.post(f"/ui/device/{action}", data={"csrf": csrf(shown), "user_code": code})


class Running:
    """``hatchway login --sso`` running, its stderr read up to the instructions."""

    def __init__(self, home: Home, addr: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [HATCHWAY, "login", "--sso", *args, addr],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=home.env(),
        )
        assert self.process.stderr is not None
        self.shown = ""
        for line in self.process.stderr:
            self.shown += line
            if line.startswith("Waiting for approval"):
                break
        found = _CODE.search(self.shown)
        url = _URL.search(self.shown)
        assert found is not None, self.shown
        assert url is not None, self.shown
        self.code, self.url = found.group(1), url.group(1)

    def finish(self) -> tuple[int, str, str]:
        out, err = self.process.communicate(timeout=120)
        return self.process.returncode, out, err
