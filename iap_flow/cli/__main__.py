"""``python -m iap_flow.cli``: the same as the ``iap-flow`` script."""

from iap_flow.cli.commands import main

if __name__ == "__main__":  # pragma: no cover
    main()
