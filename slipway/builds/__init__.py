"""Builds: Docker images from a JSON spec (FastBuild's or slipway's), pushed, then called back."""
