"""Releases: projects, environments, packages, deployments over SSH, rollback and DB deltas."""
