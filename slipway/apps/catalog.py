"""The catalog: every installable app template, from every catalog source.

    catalog = load_catalog(session, settings)
    app = catalog.get("wordpress")          # NotFoundError `unknown_app` with close matches
    app.copy_to(folder)                     # the template's files, all at once
    app.version_ok("community", "6.8")

When several sources offer the same key, sources added later win over earlier ones and every
source wins over the built-in catalog; `get(key, source=...)` picks one explicitly.
Templates are parsed once per snapshot and process (snapshots never change once written).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass, replace

from sqlalchemy.orm import Session

from slipway.apps.catalog_snapshots import source_root
from slipway.apps.catalog_sources import list_sources
from slipway.apps.catalog_template import CatalogApp, Edition, Requirements, Setting, scan_cached
from slipway.core.config import Settings
from slipway.core.errors import NotFoundError

__all__ = [
    "Catalog",
    "CatalogApp",
    "Edition",
    "Requirements",
    "Setting",
    "load_catalog",
]


@dataclass(frozen=True)
class Catalog:
    """The apps of every source, in precedence order (the last source wins a key)."""

    by_source: dict[str, dict[str, CatalogApp]]
    versions: dict[str, str]

    @property
    def apps(self) -> dict[str, CatalogApp]:
        merged: dict[str, CatalogApp] = {}
        for apps in self.by_source.values():
            merged.update(apps)
        return dict(sorted(merged.items()))

    def __iter__(self) -> Iterator[CatalogApp]:
        return iter(self.apps.values())

    def __len__(self) -> int:
        return len(self.apps)

    def catalog_version(self, source: str) -> str | None:
        """The version of a source's catalog: declared by the source, else a content hash."""
        return self.versions.get(source)

    def get(self, key: str, *, source: str | None = None) -> CatalogApp:
        """The app `key` (from `source` when given); NotFoundError naming close matches."""
        if source is not None:
            if source not in self.by_source:
                raise NotFoundError(
                    f"catalog source {source!r} does not exist or has no snapshot; list them "
                    "with GET /api/v1/catalog-sources",
                    code="unknown_catalog_source",
                    details={"field": "source", "source": source},
                )
            apps = self.by_source[source]
        else:
            apps = self.apps
        if key in apps:
            return apps[key]
        suggestions = self.suggest(key, apps)
        where = f"catalog source {source!r}" if source else "the catalog"
        hint = f"did you mean {', '.join(suggestions)}? " if suggestions else ""
        raise NotFoundError(
            f"no app {key[:80]!r} in {where}; {hint}search it with GET /api/v1/catalog?q=",
            code="unknown_app",
            details={"field": "app", "key": key[:80], "suggestions": suggestions},
        )

    def also_in(self, key: str) -> list[str]:
        """The sources that offer `key`, in precedence order (the last one is used)."""
        return [name for name, apps in self.by_source.items() if key in apps]

    @staticmethod
    def suggest(key: str, apps: dict[str, CatalogApp], limit: int = 5) -> list[str]:
        """Keys close to `key`: by spelling, then by containing it or being contained in it."""
        wanted = key.lower().strip()
        names = {app.name.lower(): app.key for app in apps.values()}
        close = difflib.get_close_matches(wanted, list(apps), n=limit, cutoff=0.6)
        close += [names[n] for n in difflib.get_close_matches(wanted, list(names), limit, 0.6)]
        if wanted:
            close += [k for k in apps if wanted in k or (len(k) > 2 and k in wanted)]
        return list(dict.fromkeys(close))[:limit]

    def search(self, q: str | None = None) -> list[CatalogApp]:
        """Apps whose key, name or trademark hold every word of `q`, best matches first."""
        apps = list(self.apps.values())
        words = (q or "").lower().split()
        if not words:
            return apps
        query = " ".join(words)

        def rank(app: CatalogApp) -> tuple[int, str]:
            names = (app.name.lower(), app.trademark.lower())
            if app.key == query:
                return 0, app.key
            if app.key.startswith(query) or any(n == query for n in names):
                return 1, app.key
            if any(n.startswith(query) for n in names):
                return 2, app.key
            return (3 if query in app.key else 4), app.key

        found = [
            app
            for app in apps
            if all(word in f"{app.key} {app.name} {app.trademark}".lower() for word in words)
        ]
        return sorted(found, key=rank)


def load_catalog(session: Session, settings: Settings) -> Catalog:
    """The catalog as the sources' current snapshots have it."""
    by_source: dict[str, dict[str, CatalogApp]] = {}
    versions: dict[str, str] = {}
    for source in list_sources(session, settings):
        root = source_root(settings, source)
        if root is None or not root.is_dir():
            continue
        result = scan_cached(str(root))
        by_source[source.name] = {
            key: replace(
                app,
                source=source.name,
                catalog_version=result.version,
                allow_privileged=source.allow_privileged,
            )
            for key, app in result.apps.items()
        }
        versions[source.name] = result.version
    return Catalog(by_source=by_source, versions=versions)
