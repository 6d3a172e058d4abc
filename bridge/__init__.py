"""The Luminous invoice bridge: e-commerce order webhooks in, exactly one Luminous invoice out."""

__version__ = "0.1.0"
