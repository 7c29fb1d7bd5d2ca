"""The registry website: Markdown pages rendered from the index with jinja2, built
with mkdocs-material, searched with one compact JSON file. Cards are untrusted."""
