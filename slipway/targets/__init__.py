"""Targets: the external things slipway acts on, each validated when saved and kept with its
revision history. So far: Docker endpoints."""
