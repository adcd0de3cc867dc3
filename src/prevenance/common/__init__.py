"""What every domain needs and nothing domain-specific."""
