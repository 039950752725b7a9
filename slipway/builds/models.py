"""Builds and everything they keep: the build rows, mirror profiles, callback attempts."""

from __future__ import annotations

from slipway.builds.callback_models import *  # noqa: F403
from slipway.builds.mirror_models import *  # noqa: F403
