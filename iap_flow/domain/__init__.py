"""The pure domain: models, money, ids, clock, errors, roles, policy, machines, transition
tables and deadline rules. No I/O, and no import from outside this package."""
