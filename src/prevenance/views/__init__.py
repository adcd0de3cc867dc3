"""Top-level views that compose several domains (they sit above every domain, like app and console)."""
