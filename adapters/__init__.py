"""Adapters that plug into iap-flow's ports: stores, payment platforms, notifiers.

Installed as ``iap_flow.adapters``; the core never imports them.
"""
