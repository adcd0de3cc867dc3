"""Developer tools run from the repository (never installed): screenshots, source checks."""
