"""/docs and /redoc render on a machine without internet: every asset they load is
served by the API itself, from a bundled package, never from a CDN."""

from __future__ import annotations

import re

import httpx
import pytest

from duecourse.api import create_app
from duecourse.settings import Settings

URL = re.compile(r"""(?:src|href)=["']([^"']+)["']|url:\s*["']([^"']+)["']""")


@pytest.mark.parametrize(("page", "script"), [("/docs", "swagger-ui-bundle.js"),
                                              ("/redoc", "redoc.standalone.js")])
async def test_the_api_docs_load_nothing_from_outside(page: str, script: str) -> None:
    app = create_app(Settings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://api") as http:
        html = (await http.get(page)).raise_for_status().text
        loaded = [a or b for a, b in URL.findall(html)]
        assert any(u.endswith(script) for u in loaded), loaded
        outside = [u for u in loaded if u.startswith(("http:", "https:", "//"))]
        assert outside == [], f"{page} fetches from the internet: {outside}"
        assert "fonts.googleapis" not in html
        for url in loaded:
            asset = await http.get(url)
            assert asset.status_code == 200, url
            if url.endswith(".js"):
                assert len(asset.content) > 100_000, f"{url} is not the bundled script"
        spec = (await http.get("/openapi.json")).raise_for_status().json()
        assert spec["info"]["title"] == "duecourse"
