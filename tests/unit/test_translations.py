"""Catalog hygiene: every user-visible string is marked for translation, and the French catalog has
each one translated, nothing fuzzy, nothing stale (``python -m webui translations check``).

The template and script scans are static: they find text a person would read that is not inside
``_()``/``ngettext()``. ``tests/browser/test_languages.py`` scans the rendered pages as well.
"""

from __future__ import annotations

import ast
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from webui import translations

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted((ROOT / "webui" / "templates").glob("*.html"))
SCRIPTS = sorted((ROOT / "webui" / "static").glob("*.js"))
# Written the same in French and English (names, units, acronyms): never flagged.
SAME_IN_EVERY_LANGUAGE = re.compile(
    r"Au Bon Beurre|E\. coli|NaCl|K\+|pH|°C|mg/L|g/L|ppm|kWh|Wh|Hz|\b(?:CSV|PDF|JSON|MQTT|API|HTTPS?|SMTP|URL|"
    r"ISO|UTC|TLS|ID|OK|kg|W|V|A)\b|python -m [\w. -]+")  # ...and a command to type
WORD = re.compile(r"[A-Za-z]{2,}")
VISIBLE_ATTRIBUTES = ("title", "placeholder", "aria-label", "alt", "label", "data-confirm")


def _words(text: str) -> str:
    """The words of ``text`` that would need translating ("" when there are none)."""
    text = re.sub(r"&\w+;|&#\d+;", " ", text)
    text = SAME_IN_EVERY_LANGUAGE.sub(" ", text)
    return " ".join(WORD.findall(text))


# -- templates ---------------------------------------------------------------------------------------

JINJA = re.compile(r"\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}", re.S)


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        for name, value in attrs:
            visible = name in VISIBLE_ATTRIBUTES or (name == "value" and tag in ("input", "button"))
            if value and visible and _words(value):
                self.found.append(f"<{tag} {name}={value!r}>")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and _words(data):
            self.found.append(data.strip())


JINJA_OUTPUT = re.compile(r"\{\{(.*?)\}\}", re.S)
_JSTR = r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'"""  # a Jinja string literal, escapes included
MARKED_CALL = re.compile(rf"\b(?:_|gettext|ngettext|pgettext)\(\s*(?:{_JSTR})(?:\s*,\s*(?:{_JSTR}))?")
JINJA_STRING = re.compile(r""""((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'""")


def unmarked_template_text(source: str) -> list[str]:
    # Jinja's own syntax (where marked strings live) is blanked; what remains is literal HTML.
    collector = _TextCollector()
    collector.feed(JINJA.sub(" ", source))
    # And text written as a Jinja string ({{ x or "nothing yet" }}) outside _().
    for expr in JINJA_OUTPUT.findall(source):
        for double, single in JINJA_STRING.findall(MARKED_CALL.sub(" ", expr)):
            text = double or single
            if " " in text.strip() and _words(text):
                collector.found.append(f"{{{{ {text!r} }}}}")
    return collector.found


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_templates_have_no_unmarked_text(path: Path) -> None:
    assert unmarked_template_text(path.read_text(encoding="utf-8")) == []


def test_the_template_scan_finds_unmarked_text() -> None:
    found = unmarked_template_text('<p>{{ _("Fine") }}</p><button title="Delete it">✕</button><td>Saved</td>'
                                   '<script>const x = "not text";</script><span>{{ x }} kg</span>'
                                   '<p>{{ x or "nothing yet" }}</p><p>{{ _("A %(b)s", b=y) }}</p>')
    assert found == ["<button title='Delete it'>", "Saved", "{{ 'nothing yet' }}"]


# -- scripts -----------------------------------------------------------------------------------------

def _css_classes() -> set[str]:
    css = (ROOT / "webui" / "static" / "dashboard.css").read_text(encoding="utf-8")
    return set(re.findall(r"\.([a-z][a-z0-9-]*)", css))


def js_literals(source: str) -> list[tuple[int, str, bool, bool]]:
    """Every string literal and template-literal text part of ``source``: (line, text, marked, is_template).
    ``marked``: the first argument of ``_()``, or one of the first two of ``ngettext()``/``pgettext()``."""
    out: list[tuple[int, str, bool, bool]] = []
    n = len(source)
    ident = re.compile(r"[A-Za-z_$][\w$]*")
    regex_after = ("", "(", ",", "=", ":", "[", "!", "&", "|", "?", "{", "}", ";", "return", "+")

    def line_of(i: int) -> int:
        return source.count("\n", 0, i) + 1

    def string(start: int, is_marked: bool) -> int:
        quote, j = source[start], start + 1
        while j < n and source[j] != quote:
            j += 2 if source[j] == "\\" else 1
        out.append((line_of(start), source[start + 1:j], is_marked, False))
        return j + 1

    def template(start: int, is_marked: bool) -> int:
        # One entry per template literal: its text parts joined by NUL where the ${...} were, so an
        # HTML tag split by an expression is still one tag. The expressions are scanned on their own.
        j, parts, part = start + 1, [], []
        while j < n:
            c = source[j]
            if c == "\\":
                part.append(source[j:j + 2])
                j += 2
            elif c == "`":
                parts.append("".join(part))
                out.append((line_of(start), "\0".join(parts), is_marked, True))
                return j + 1
            elif c == "$" and source[j + 1:j + 2] == "{":
                parts.append("".join(part))
                j, part = scan(j + 2, in_template=True), []
            else:
                part.append(c)
                j += 1
        return j

    def scan(i: int, in_template: bool = False) -> int:
        prev = ""  # the previous significant token, to tell a regex literal from a division
        stack: list[list] = []  # per open bracket: [name called before "(" or "", argument index]

        def marked() -> bool:
            if not stack:
                return False
            name, idx = stack[-1]
            # pgettext(context, text): the context is not shown, the text is.
            return (name == "_" and idx == 0) or (name in ("ngettext", "pgettext") and idx in (0, 1))

        while i < n:
            c = source[i]
            if source.startswith("//", i):
                i = source.find("\n", i)
                i = n if i < 0 else i
                continue
            if source.startswith("/*", i):
                i = source.find("*/", i) + 2
                continue
            if c in "\"'":
                i, prev = string(i, marked()), "lit"
                continue
            if c == "`":
                i, prev = template(i, marked()), "lit"
                continue
            if c == "/" and prev in regex_after:
                j, in_class = i + 1, False  # a regex literal
                while j < n and (source[j] != "/" or in_class):
                    if source[j] == "\\":
                        j += 1
                    elif source[j] == "[":
                        in_class = True
                    elif source[j] == "]":
                        in_class = False
                    j += 1
                i, prev = j + 1, "lit"
                continue
            m = ident.match(source, i)
            if m:
                prev, i = m.group(0), m.end()
                continue
            if c == "(":
                stack.append([prev if ident.fullmatch(prev or "-") and prev != "return" else "", 0])
            elif c in "[{":
                stack.append(["", 0])
            elif c in ")]}":
                if not stack and c == "}" and in_template:
                    return i + 1
                if stack:
                    stack.pop()
            elif c == "," and stack:
                stack[-1][1] += 1
            if not c.isspace():
                prev = c
            i += 1
        return i

    scan(0)
    return out


TAG = re.compile(r"<[^>]*>")
ATTR = re.compile(r'\b(?:title|placeholder|aria-label|alt|label|data-label)="([^"]*)"')
CODE = re.compile(r"[\w$.#:\[\]=\"'/?&\0-]+")  # no space: an identifier, key, selector, path, MIME type...


def unmarked_script_text(source: str, classes: set[str]) -> list[str]:
    lines = source.splitlines()
    found = []
    for line, text, is_marked, _is_template in js_literals(source):
        if is_marked or "i18n-skip" in lines[line - 1] or text == "use strict":
            continue
        # HTML: its text between tags and its visible attributes.
        visible = " ".join(ATTR.findall(text)) + " " + TAG.sub(" ", text) if "<" in text else text
        visible = visible.replace("\0", " ")
        words = _words(visible)
        if not words:
            continue
        if "<" not in text and text.lstrip().startswith(("#", ".", "/", "rgb", "\0/")):
            continue  # a selector, a URL path, a colour
        if "<" not in text and CODE.fullmatch(text.strip()) and (
                re.search(r"[-_.#\[\]=/:$]|[a-z][A-Z]", text.strip())
                or text.strip().islower() or text.strip().isupper()):
            continue  # code: an identifier, an event, a selector, a URL path, a header's value
        tokens = words.split()
        if "<" not in text and all(t in classes for t in tokens):
            continue  # a class list
        found.append(f"line {line}: {text.strip()[:80]!r}")
    return found


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_scripts_have_no_unmarked_text(path: Path) -> None:
    assert unmarked_script_text(path.read_text(encoding="utf-8"), _css_classes()) == []


def test_every_marked_script_string_is_extracted() -> None:
    """Babel's JavaScript extractor skips some calls (e.g. ``_()`` inside a quoted attribute of a
    template literal): a string marked but never extracted would silently stay English."""
    extracted = {m.id if isinstance(m.id, str) else m.id[0] for m in translations.template("js") if m.id}
    extracted |= {m.id[1] for m in translations.template("js") if isinstance(m.id, tuple)}
    extracted |= {m.context for m in translations.template("js") if m.context}
    missed = {}
    for path in SCRIPTS:
        for line, text, is_marked, is_template in js_literals(path.read_text(encoding="utf-8")):
            if is_marked and not is_template and text.encode().decode("unicode_escape") not in extracted \
                    and text not in extracted:
                missed[f"{path.name}:{line}"] = text
    assert missed == {}


def test_the_script_scan_finds_unmarked_text() -> None:
    source = '''
      el.textContent = _("Saved {n} rows", { n });
      x.title = ngettext("{n} alarm", "{n} alarms", n);
      el.textContent = "Saved";
      el.innerHTML = `<td>${esc(a)}</td><td title="Open it">${_("Fine")}</td><td>no data yet</td>`;
      el.classList.add("badge");
      fetch("/api/alarms", { method: "GET" });
      const re = /a "b" c/;
      el.className = "badge warn";
      el.dataset.state = "connecting";
      el.textContent = "two words"; // i18n-skip: shown to nobody
      const q = x / 2; const y = "Unmarked again";
    '''
    found = unmarked_script_text(source, {"badge", "warn"})
    assert [f.split(":", 1)[0] for f in found] == ["line 4", "line 5", "line 12"], found
    assert "Open it" in found[1] and "no data yet" in found[1]


# -- Python: API errors, page errors -----------------------------------------------------------------

PEOPLE_FACING_CALLS = {"ApiError": 1, "_not_found": 0, "error_response": 1, "abort": 1}
# Answers to devices (legacy HTTP senders), not people: English, like the rejected reasons they match.
DEVICE_FACING = {"webui/ingest.py"}


def unmarked_python_messages(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        index = PEOPLE_FACING_CALLS.get(name)
        if index is None or len(node.args) <= index:
            continue
        arg = node.args[index]
        # A literal, an f-string, or text glued to a value ("bad " + x, "… %s" % x): never translated.
        texts = [n for n in ast.walk(arg) if isinstance(n, ast.JoinedStr)
                 or (isinstance(n, ast.Constant) and isinstance(n.value, str) and _words(n.value))]
        translated = isinstance(arg, ast.Call) and getattr(arg.func, "id", getattr(arg.func, "attr", "")) in (
            "_", "gettext", "ngettext", "pgettext", "gettext_anyway", "translated")
        if texts and not translated:
            found.append(f"line {node.lineno}: {name}({ast.unparse(arg)[:70]})")
    return found


@pytest.mark.parametrize("path", [p for p in sorted((ROOT / "webui").rglob("*.py"))
                                  if str(p.relative_to(ROOT)) not in DEVICE_FACING],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_people_facing_errors_are_translated(path: Path) -> None:
    assert unmarked_python_messages(path.read_text(encoding="utf-8")) == []


def test_the_python_scan_finds_unmarked_messages() -> None:
    found = unmarked_python_messages('raise ApiError(404, f"user {u} is unknown")\n'
                                     'raise ApiError(404, _("user %(u)s is unknown", u=u))\n'
                                     'return _not_found("Unit 3 is unknown.")\n'
                                     'raise ApiError(400, "bad " + x)\n'
                                     'abort(400, "no such page %s" % x)\n'
                                     'raise ApiError(400, exc.translated(gettext))\n')
    assert [f.split(":")[0] for f in found] == ["line 1", "line 3", "line 4", "line 5"], found


# -- the catalogs ------------------------------------------------------------------------------------

def test_the_french_catalogs_are_complete_and_current() -> None:
    """Every marked string is in fr/*.po, translated, not fuzzy, with the English's placeholders;
    nothing the sources no longer have (run ``python -m webui translations update`` and translate)."""
    assert translations.check() == []
