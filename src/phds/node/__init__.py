"""The hospital node's governance core: configuration, policy, disclosure gate, audit log, approvals.

The network agent (pull loop) and data sources plug in on top of these; nothing here talks to a network.
"""

from phds.node.approvals import ApprovalDecision, ApprovalStore, PendingApproval
from phds.node.audit import AuditEntry, AuditLog, NodeDatabase, VerifyReport
from phds.node.config import NodeConfig, load_node_config
from phds.node.gate import Gate, GateContext, GateResult
from phds.node.policy import Decision, Policy, TaskRequest

__all__ = [
    "ApprovalDecision",
    "ApprovalStore",
    "AuditEntry",
    "AuditLog",
    "Decision",
    "Gate",
    "GateContext",
    "GateResult",
    "NodeConfig",
    "NodeDatabase",
    "PendingApproval",
    "Policy",
    "TaskRequest",
    "VerifyReport",
    "load_node_config",
]
