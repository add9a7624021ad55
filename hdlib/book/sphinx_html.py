"""Local Sphinx extension of the book: small fixes to the rendered pages.

In a Jupyter Book 1.x build, sphinx-thebe's inline configuration script reaches every page
twice (once as ``_JavaScript(None, body=...)``, once as ``_JavaScript('', body=...)``), and the
second ``const THEBE_JS_URL`` declaration is a console error in the browser. Scripts that differ
only in that way are dropped here from each page's context, before the template renders it.

The handler runs last (priority 900): extensions that add scripts per page, such as
``sphinx.ext.mathjax`` on pages with equations, must have added them before the list is
replaced, or they would be lost.
"""


def _key(script):
    attributes = getattr(script, "attributes", {}) or {}
    return str(getattr(script, "filename", script) or ""), tuple(sorted(attributes.items()))


def drop_repeated_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = _key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique  # a new list: the builder reuses its own per page


def setup(app):
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
