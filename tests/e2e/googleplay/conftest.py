"""Fixtures of the Google Play end-to-end tests (see play_env)."""

from play_env import env, play

__all__ = ["env", "play"]
