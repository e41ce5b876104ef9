"""MkDocs hooks (``hooks:`` in mkdocs.yml): pages that show what the code declares are filled in from the code
when the site is built, so that they cannot drift from it."""

from __future__ import annotations

#: In a page, the line that the registry's feature table replaces.
FEATURE_TABLE = "<!-- feature table: filled in from the extractor registry when the site is built -->"


def on_page_markdown(markdown: str, page=None, config=None, files=None, **kwargs) -> str:
    """Replace :data:`FEATURE_TABLE` by ``extract.extractors.feature_table()``."""
    if FEATURE_TABLE not in markdown:
        return markdown
    from extract.extractors import feature_table  # the installed package: `pip install -e .[docs]` of this checkout

    return markdown.replace(FEATURE_TABLE, feature_table())
