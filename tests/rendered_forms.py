"""What a browser submits for a form a page rendered: the test client's POST of exactly that.

A form test that writes its own POST data tests what the author thinks the page sends; this reads
the page. It follows the HTML rules a browser does: checked checkboxes and radios only, a select's
selected options (or its first one, for a single select with none selected), a textarea's text,
disabled controls and buttons left out.
"""

from __future__ import annotations

from html.parser import HTMLParser


class _Forms(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.inside = False
        self.forms: list[tuple[dict, list[tuple[str, str]]]] = []
        self.data: list[tuple[str, str]] = []
        self._select: dict | None = None
        self._option: dict | None = None
        self._textarea: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside, self.data = True, []
            self.forms.append((a, self.data))
            return
        if not self.inside or "disabled" in a:
            if tag == "select" and "disabled" in a:
                self._select = {"name": None, "multiple": False, "options": []}
            return
        if tag == "input":
            kind = a.get("type", "text").lower()
            if kind in ("submit", "button", "reset", "image", "file") or not a.get("name"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self.data.append((a["name"], a.get("value", "on" if kind in ("checkbox", "radio") else "")))
        elif tag == "select":
            self._select = {"name": a.get("name"), "multiple": "multiple" in a, "options": []}
        elif tag == "option" and self._select is not None:
            self._option = {"value": a.get("value"), "selected": "selected" in a, "text": ""}
            self._select["options"].append(self._option)
        elif tag == "textarea" and a.get("name"):
            self._textarea = {"name": a["name"], "text": ""}

    def handle_data(self, data):
        if self._option is not None:
            self._option["text"] += data
        if self._textarea is not None:
            self._textarea["text"] += data

    def handle_endtag(self, tag):
        if tag == "form" and self.inside:
            self.inside = False
        elif tag == "option":
            self._option = None
        elif tag == "textarea" and self._textarea is not None:
            text = self._textarea["text"]
            self.data.append((self._textarea["name"], text[1:] if text.startswith("\n") else text))
            self._textarea = None
        elif tag == "select" and self._select is not None:
            select, self._select = self._select, None
            if not select["name"]:
                return
            chosen = [o for o in select["options"] if o["selected"]]
            if not chosen and not select["multiple"] and select["options"]:
                chosen = select["options"][:1]
            for option in chosen:
                value = option["value"] if option["value"] is not None else option["text"].strip()
                self.data.append((select["name"], value))


def rendered_forms(html: str) -> list[tuple[dict, dict[str, list[str]]]]:
    """Every form of the page: its attributes (``action``, ``id``, ``method``…) and the fields a browser would
    submit for it (name → values)."""
    parser = _Forms()
    parser.feed(html)
    out = []
    for attrs, pairs in parser.forms:
        data: dict[str, list[str]] = {}
        for name, value in pairs:
            data.setdefault(name, []).append(value)
        out.append((attrs, data))
    return out


def rendered_form(html: str, form_id: str) -> dict[str, list[str]]:
    """The fields a browser would submit for the form ``form_id`` of the page: name → values."""
    found = [data for attrs, data in rendered_forms(html) if attrs.get("id") == form_id]
    assert found, f"no form {form_id} on the page"
    return found[0]
