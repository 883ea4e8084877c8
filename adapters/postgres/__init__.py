"""The PostgreSQL store (``pip install 'iap-flow[postgres]'``): ``open_flow("postgresql://...")``."""

from iap_flow.adapters.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
