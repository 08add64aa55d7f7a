"""/docs and /redoc need no network: every asset they load is served by the app itself."""

from __future__ import annotations

import re

import pytest

from app.main import create_app
from tests.conftest import make_settings
from tests.support.app_client import running_app

_ASSET = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|url\s*:\s*["']([^"']+)["']""")
_CONTENT_TYPES = {
    ".js": "javascript",
    ".css": "text/css",
    ".png": "image/png",
}


def _references(html: str) -> list[str]:
    return [a or b for a, b in _ASSET.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_page_loads_only_the_apps_own_assets(page: str) -> None:
    async with running_app(create_app(make_settings(), telemetry=None)) as (client, _):
        response = await client.get(page)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        html = response.text
        references = _references(html)
        assert references, html
        assert "/openapi.json" in references
        for url in references:
            assert url.startswith("/"), f"{page} loads {url} from elsewhere"
            assert not url.startswith("//"), f"{page} loads {url} from another host"
        assert "://" not in html, "an absolute URL in the page needs the network"
        assets = [u for u in references if u != "/openapi.json"]
        assert any(u.endswith(".js") for u in assets)
        for url in assets:
            asset = await client.get(url)
            assert asset.status_code == 200, url
            suffix = url[url.rfind(".") :]
            assert _CONTENT_TYPES[suffix] in asset.headers["content-type"], url
            assert len(asset.content) > 1000, url
        spec = await client.get("/openapi.json")
        assert spec.status_code == 200
        assert spec.json()["info"]["title"] == "Market API"
