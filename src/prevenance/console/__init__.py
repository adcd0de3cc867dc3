"""The web console and the member portal: Jinja2 + HTMX pages served beside the API, FR/EN."""
