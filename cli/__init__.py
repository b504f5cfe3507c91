"""The ``ledger`` command: the service entry points (serve, db migrate, …) and an HTTP client.

It sits above every layer (it starts the API), so it may import them all; nothing imports it.
"""
