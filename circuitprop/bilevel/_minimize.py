"""Matrix-free minimisation, re-exported from the solver package
(:mod:`circuitprop._solve._minimise`) under its historical name."""

from .._solve._minimise import MinimizeResult as MinimizeResult
from .._solve._minimise import autodiff_oracle as autodiff_oracle
from .._solve._minimise import finite_difference_oracle as finite_difference_oracle
from .._solve._minimise import minimize as minimize
