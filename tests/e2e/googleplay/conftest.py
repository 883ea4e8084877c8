"""Fixtures of the Google Play end-to-end tests (see play_env)."""

from platform_env import store
from play_env import env, play

__all__ = ["env", "play", "store"]
