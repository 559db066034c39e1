"""What every HTTP provider adapter (SMS gateway, dialer) checks and reads the same way:
the URL a setting names, and a JSON answer that may not be JSON."""

from __future__ import annotations

import ipaddress
from typing import Any

import httpx

from duecourse.channels.routing import ChannelSettingError


def setting_url(value: str, setting: str, example: str, token_setting: str, *,
                secure: bool = True) -> str:
    """An http(s) URL without credentials, query or fragment (`secure`: https, or http only
    to this machine, since numbers and the token travel over it), or a sentence saying
    what `setting` must be."""
    try:
        url = httpx.URL(value.strip())
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ChannelSettingError(f"{setting} must be an https:// URL, such as {example}")
    if secure and url.scheme == "http" and not loopback(url.host):
        raise ChannelSettingError(f"{setting} must use https:// (plain http only to "
                                  "localhost): credentials and numbers travel over it")
    if url.userinfo or url.query or url.fragment:
        raise ChannelSettingError(f"{setting} must not carry credentials, a query or a "
                                  f"fragment: put the token in {token_setting}")
    return value.strip()


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def json_object(answer: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object, or {} for anything else (an HTML error page, a list)."""
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
