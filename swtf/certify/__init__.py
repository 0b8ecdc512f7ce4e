"""Certification engine: certified bounds and radii (IBP, CROWN, CROWN-IBP, alpha-CROWN, complete verification by
branch and bound with beta-CROWN, exact MILP) for networks of ReLU, sigmoid, tanh, max and average pooling,
affine and residual layers.

Public API:
  bounds(model, x, eps, *, norm, method, clip)          certified logit bounds (lower, upper);
  margin_bounds(model, x, y, eps, *, norm, method, clip) certified lower bounds of f_y - f_j;
  certified_radius(model, x, y, *, norm, method, clip, max_radius, tol, timeout_per_point)
                                                        largest certified radius (method 'bab': complete);
  radius_bracket(model, x, y, *, norm, method, clip, ...)   certified radius and attack radius per point;
  from_keras(model), from_saved_model(path)             front-ends to the `Network` representation;
  forward(network, x)                                   the representation's NumPy reference evaluation.
"""

from swtf.certify.api import as_network, bounds, margin_bounds
from swtf.certify.bracket import Bracket, radius_bracket
from swtf.certify.keras_frontend import from_keras
from swtf.certify.network import Network, Node, forward
from swtf.certify.radius import certified_radius
from swtf.certify.savedmodel_frontend import from_saved_model
from swtf.certify.verifier import METHODS

__all__ = ["METHODS", "Bracket", "Network", "Node", "as_network", "bounds", "certified_radius", "forward",
           "from_keras", "from_saved_model", "margin_bounds", "radius_bracket"]
from swtf.certify.exact import ExactBounds, ExactResult, exact_logit_bounds, exact_margin_bounds, verify_exact
