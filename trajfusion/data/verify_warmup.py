"""Imported once by each verifier worker (in the forkserver, so forked workers inherit it): runs
a few checks so that math-verify's one-time set-up (the LaTeX grammar, sympy's caches, about
1.5 s) is paid before a worker reports ready, not inside the first item's hard timeout."""

from trajfusion.core.verify import check_reason

for _gold, _pred in (("\\frac{1}{2}", "x+1"), ("\\sqrt{2}/2", "\\frac{1}{\\sqrt{2}}"), ("(1,2)", "\\{1, 2\\}")):
    check_reason(_gold, _pred)
