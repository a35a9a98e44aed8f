"""Front-end libraries (Chart.js, the Socket.IO client), fetched from the npm registry at install or
image-build time and served from ``static/vendor/``: plant networks are often offline, so nothing
is loaded from a CDN at run time.

Each package is pinned by version and by the registry's sha512 integrity, so a tampered or
truncated download is refused instead of being served to every operator's browser.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import tarfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from plantmodel.errors import PlantModelError

log = logging.getLogger(__name__)

VENDOR_DIR = Path(__file__).resolve().parent / "static" / "vendor"
DEFAULT_REGISTRY = "https://registry.npmjs.org"
STAMP = "ASSETS.json"


@dataclass(frozen=True, slots=True)
class NpmAsset:
    package: str
    version: str
    integrity: str  # "sha512-<base64>", as in package-lock.json / `npm view <pkg>@<v> dist.integrity`
    files: tuple[tuple[str, str], ...]  # (path inside the tarball, name in vendor/)

    def tarball_url(self, registry: str) -> str:
        return f"{registry.rstrip('/')}/{self.package}/-/{self.package.split('/')[-1]}-{self.version}.tgz"


ASSETS = (
    NpmAsset("chart.js", "4.5.1",
             "sha512-GIjfiT9dbmHRiYi6Nl2yFCq7kkwdkp1W/lp2J99rX0yo9tgJGn3lKQATztIjb5tVtevcBtIdICNWqlq5+E8/Pw==",
             (("package/dist/chart.umd.min.js", "chart.umd.min.js"), ("package/LICENSE.md", "chart.js.LICENSE.md"))),
    NpmAsset("socket.io-client", "4.8.1",
             "sha512-hJVXfu3E28NmzGk8o1sHhN3om52tRvwYeidbj7xKy2eIIse5IoKX3USlS6Tqt3BHAtflLIkCQBkzVrEEfWUyYQ==",
             (("package/dist/socket.io.min.js", "socket.io.min.js"), ("package/LICENSE", "socket.io-client.LICENSE"))),
)

Fetch = Callable[[str], bytes]


class AssetError(PlantModelError):
    pass


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as resp:
        return resp.read()


def _stamp(vendor: Path) -> dict[str, str]:
    try:
        return json.loads((vendor / STAMP).read_text())
    except (OSError, ValueError):
        return {}


def missing_assets(vendor: Path = VENDOR_DIR, assets: tuple[NpmAsset, ...] = ASSETS) -> list[str]:
    """Packages whose pinned version is not installed in ``vendor``."""
    stamp = _stamp(vendor)
    return [
        f"{a.package}@{a.version}" for a in assets
        if stamp.get(a.package) != a.version or not all((vendor / dest).is_file() for _, dest in a.files)
    ]


def verify_integrity(data: bytes, integrity: str) -> None:
    algo, _, expected = integrity.partition("-")
    if algo != "sha512":
        raise AssetError(f"unsupported integrity {algo!r}")
    actual = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if actual != expected:
        raise AssetError(f"integrity mismatch: expected sha512-{expected}, got sha512-{actual}")


def ensure_assets(vendor: Path = VENDOR_DIR, *, registry: str = DEFAULT_REGISTRY, fetch: Fetch = _download,
                  assets: tuple[NpmAsset, ...] = ASSETS, force: bool = False,
                  progress: Callable[[str], None] = print) -> int:
    """Fetch what is missing (everything with ``force``); returns how many packages were fetched."""
    vendor.mkdir(parents=True, exist_ok=True)
    wanted = {f"{a.package}@{a.version}" for a in assets} if force else set(missing_assets(vendor, assets))
    stamp = _stamp(vendor)
    fetched = 0
    for asset in assets:
        if f"{asset.package}@{asset.version}" not in wanted:
            continue
        url = asset.tarball_url(registry)
        progress(f"assets: fetching {asset.package}@{asset.version} from {url}")
        try:
            data = fetch(url)
        except OSError as exc:
            raise AssetError(f"cannot download {url}: {exc} (set NPM_REGISTRY to a reachable mirror)") from exc
        verify_integrity(data, asset.integrity)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member, dest in asset.files:
                try:
                    extracted = tar.extractfile(member)
                except KeyError:
                    extracted = None
                if extracted is None:
                    raise AssetError(f"{asset.package}@{asset.version} has no {member}")
                tmp = vendor / (dest + ".tmp")
                tmp.write_bytes(extracted.read())
                tmp.replace(vendor / dest)  # atomic: a browser never gets half a file
        stamp[asset.package] = asset.version
        fetched += 1
    (vendor / STAMP).write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")
    return fetched
