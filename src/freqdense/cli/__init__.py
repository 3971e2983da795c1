"""The ``freqdense`` command line."""
