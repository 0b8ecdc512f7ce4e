"""Certification engine: network representation, front-ends and bound-propagation methods."""

from swtf.certify.keras_frontend import from_keras
from swtf.certify.network import Network, Node, forward

__all__ = ["Network", "Node", "forward", "from_keras"]
