"""The network's money path: tariffs, quotes, metering, invoices, revenue share, simulator.

Pure domain: no FastAPI. Its persistence is the hub's store; its API is ``phds.hub.api``.
"""
