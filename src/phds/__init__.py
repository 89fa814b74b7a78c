"""PHDS: a federated Paediatric Health Data Space on OMOP CDM."""

from phds.errors import PhdsError

__version__ = "0.1.0"

__all__ = ["PhdsError", "__version__"]
