"""The disclosure gate: the only producer of values that may leave a node (a chain of release steps).

See :mod:`phds.node.gate.pipeline` for the chain, :mod:`phds.node.gate.rules` for the rule of each
aggregate type and :mod:`phds.node.gate.guard` for the overlap guard and query budgets.
"""

from phds.node.gate.pipeline import AuditStep, Gate, GateContext, GateResult, Release, ReleaseStep

__all__ = ["AuditStep", "Gate", "GateContext", "GateResult", "Release", "ReleaseStep"]
