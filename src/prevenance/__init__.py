"""Prévenance: one customer record behind rewards, service, voice of the customer and offers."""

__version__ = "0.1.0"
