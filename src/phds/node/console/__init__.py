"""The data steward's console: a small web app the node serves on the hospital's own network only.

Stewards decide at the node, never at the hub (DESIGN.md invariant 4). ``phds node console`` serves this
app in its own process, bound to 127.0.0.1 unless ``--allow-remote``, beside ``phds node run``; both work
on ``node.db``. The console never connects to the hub except to fetch the earnings statement, with the
node's credential, and the node itself still accepts no connection from outside.

Pages: the approval queue (every pending study in full; approve or reject through the same
:class:`~phds.node.approvals.ApprovalStore` calls as the CLI), the audit log and its verification, the
policy, the privacy-budget ledger and the earnings statement. Sign-in is a one-time link printed at
start-up (:mod:`phds.node.console.session`).
"""

from phds.node.console.app import LOOPBACK_HOSTS, create_console
from phds.node.console.session import announce_link

__all__ = ["LOOPBACK_HOSTS", "announce_link", "create_console"]
