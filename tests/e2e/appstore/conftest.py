"""Fixtures of the App Store end-to-end tests (see apple_env)."""

from apple_env import api, chain, env, key_pem
from platform_env import store

__all__ = ["api", "chain", "env", "key_pem", "store"]
