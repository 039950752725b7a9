"""slipway: self-hosted application delivery platform."""

__version__ = "0.1.0"
