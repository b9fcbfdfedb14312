"""The engine's table of names (defined in :mod:`circuitprop._estimators`, below the
experiment files that validate against it)."""

from .._estimators import ADJOINTS as ADJOINTS
from .._estimators import AGNOSTIC_VARIANTS as AGNOSTIC_VARIANTS
from .._estimators import ESTIMATORS as ESTIMATORS
from .._estimators import HOLOMORPHIC_MAX as HOLOMORPHIC_MAX
from .._estimators import LOSSES as LOSSES
from .._estimators import RULES as RULES
from .._estimators import agnostic_phases as agnostic_phases
from .._estimators import combine as combine
from .._estimators import estimator_names as estimator_names
from .._estimators import estimator_points as estimator_points
from .._estimators import is_estimator as is_estimator
