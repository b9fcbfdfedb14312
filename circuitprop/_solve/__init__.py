"""The one steady-state solver package (see ``docs/architecture.md``): ``_methods`` names the
solvers an analysis can ask for, ``_newton`` holds the one Newton loop, ``_linear`` the one CG,
``_result`` the result enumeration."""
