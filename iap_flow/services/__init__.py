"""Application services: one class per area, all writing through :mod:`.base`."""
