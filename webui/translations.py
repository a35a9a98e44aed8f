"""The translation catalogs' tooling: ``python -m webui translations {update,check,compile}``.

``update`` extracts every marked string (Python and templates into the ``messages`` domain, the pages'
scripts into ``js``) and merges it into each language's ``.po``: new strings appear untranslated,
changed ones fuzzy, removed ones are dropped. ``check`` lists what a release must not ship (missing,
untranslated, fuzzy or stale entries, placeholders that differ from the English); the test suite runs
it. ``compile`` writes the ``.mo`` files the services load (never committed: built from the ``.po``).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from plantmodel.i18n import LANGUAGES, SOURCE_LANGUAGE, catalog_paths

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "abb-telemetry"

# What is extracted into which domain, from which folders (relative to the repository).
PYTHON_SOURCES = ("plantmodel", "store", "webui", "notifier")
JS_KEYWORDS = {"_": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2)}
# Placeholders a translation must keep: {name} in scripts, %(name)s in Python and templates.
_PLACEHOLDER = re.compile(r"\{[a-z_][a-z0-9_]*\}|%\([a-z_][a-z0-9_]*\)[sdfr]", re.IGNORECASE)


MessageId = str | tuple[str, str]  # a plural message's id is (singular, plural)
Key = tuple[MessageId, str | None]  # with its context (pgettext), which tells apart two same English texts


def _extract(domain: str, root: Path = ROOT) -> dict[Key, list[tuple[str, int]]]:
    found: dict[Key, list[tuple[str, int]]] = {}

    def add(folder: str, entries: Iterable[tuple[str, int, str | tuple[str, ...], list[str], str | None]]) -> None:
        for filename, lineno, message, _comments, context in entries:
            msgid: MessageId = message if isinstance(message, str) else (message[0], message[1])
            found.setdefault((msgid, context), []).append((f"{folder}/{filename}", lineno))

    if domain == "js":
        add("webui/static", extract_from_dir(
            root / "webui" / "static", [("vendor/**", "ignore"), ("**.js", "javascript")],
            keywords=JS_KEYWORDS, options_map={"**.js": {"parse_template_string": "1"}}))
    else:
        for folder in PYTHON_SOURCES:
            add(folder, extract_from_dir(
                root / folder, [("**/static/**", "ignore"), ("**.py", "python"),
                                ("**/templates/**.html", "jinja2.ext:babel_extract")],
                keywords=DEFAULT_KEYWORDS,
                options_map={"**/templates/**.html": {"extensions": "jinja2.ext.do"}}))
    return found


def template(domain: str, root: Path = ROOT) -> Catalog:
    """Every marked string of ``domain``, as a catalog without translations (a ``.pot``)."""
    catalog = Catalog(project=PROJECT, domain=domain)
    for (msgid, context), locations in _extract(domain, root).items():
        first = msgid if isinstance(msgid, str) else msgid[0]
        flags = ("python-format",) if domain == "messages" and "%(" in first else ()
        catalog.add(msgid, locations=locations, flags=flags, context=context)
    return catalog


def _read(path: Path, language: str, domain: str) -> Catalog:
    if not path.exists():
        return Catalog(locale=language, domain=domain, project=PROJECT)
    with path.open("rb") as f:
        return read_po(f, locale=language, domain=domain)


def _write(catalog: Catalog, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    # No line numbers: a change elsewhere in a file does not rewrite every entry after it.
    write_po(buf, catalog, width=100, include_lineno=False, ignore_obsolete=True, sort_by_file=False)
    path.write_bytes(buf.getvalue())


def translated_languages() -> list[str]:
    return [lang for lang in LANGUAGES if lang != SOURCE_LANGUAGE]


def update(root: Path = ROOT) -> list[str]:
    """Merge the sources' strings into every ``.po``; returns one line per catalog written."""
    out = []
    for domain in ("messages", "js"):
        pot = template(domain, root)
        for language in translated_languages():
            po, _mo = catalog_paths(language, domain)
            catalog = _read(po, language, domain)
            catalog.update(pot, no_fuzzy_matching=False, update_header_comment=False)
            catalog.obsolete.clear()
            catalog.fuzzy = False  # the header: a fuzzy one is left out of the .mo, and its plural rule with it
            _write(catalog, po)
            todo = len([m for m in catalog if m.id and (m.fuzzy or not _complete(m.string))])
            out.append(f"{po.relative_to(ROOT)}: {len(pot)} strings, {todo} to translate")
    return out


Text = str | tuple[str, ...] | list[str] | None  # a message's id or string: plural ones are sequences


def _complete(text: Text) -> bool:
    if isinstance(text, str):
        return bool(text)
    return bool(text) and all(text or ())


def _placeholders(text: Text) -> set[str]:
    if text is None:
        return set()
    texts = [text] if isinstance(text, str) else list(text)
    return {p for t in texts for p in _PLACEHOLDER.findall(t)}


def _shown(key: tuple[object, str | None]) -> str:
    msgid, context = key
    return f"{msgid!r}" + (f" (context {context!r})" if context else "")


def check(root: Path = ROOT) -> list[str]:
    """What is wrong with the catalogs against the sources (empty: ready to ship)."""
    problems = []
    for domain in ("messages", "js"):
        pot = template(domain, root)
        wanted = {(m.id, m.context) for m in pot if m.id}
        for language in translated_languages():
            po, _mo = catalog_paths(language, domain)
            if not po.exists():
                problems.append(f"{po}: missing (run: python -m webui translations update)")
                continue
            catalog = _read(po, language, domain)
            have = {(m.id, m.context): m for m in catalog if m.id}
            name = po.relative_to(ROOT)
            for key in wanted - have.keys():
                problems.append(f"{name}: not in the catalog: {_shown(key)}")
            for key in have.keys() - wanted:
                problems.append(f"{name}: stale (no longer in the sources): {_shown(key)}")
            for key, message in have.items():
                if key not in wanted:
                    continue
                msgid = _shown(key)
                if message.fuzzy:
                    problems.append(f"{name}: fuzzy (check and unmark): {msgid}")
                elif not _complete(message.string):
                    problems.append(f"{name}: untranslated: {msgid}")
                elif _placeholders(message.id) != _placeholders(message.string):
                    problems.append(f"{name}: placeholders differ from the English: {msgid}")
            for message, errors in catalog.check():
                problems.extend(f"{name}: {message.id!r}: {err}" for err in errors)
    return problems


def compile_catalogs() -> list[str]:
    """Write every ``.mo`` from its ``.po``; returns one line per file."""
    out = []
    for language in translated_languages():
        for domain in ("messages", "js"):
            po, mo = catalog_paths(language, domain)
            catalog = _read(po, language, domain)
            with mo.open("wb") as f:
                write_mo(f, catalog, use_fuzzy=False)
            out.append(f"{mo.relative_to(ROOT)}: {sum(1 for m in catalog if m.id and m.string)} strings")
    return out
