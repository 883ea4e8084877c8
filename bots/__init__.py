"""Bots that put the core's process in front of staff (installed as ``iap_flow.bots``)."""
