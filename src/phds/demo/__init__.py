"""A whole PHDS network on loopback: one hub process and one node process per hospital."""

from phds.demo.network import DemoHospital, LocalNetwork

__all__ = ["DemoHospital", "LocalNetwork"]
