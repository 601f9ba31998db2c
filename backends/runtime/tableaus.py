"""Butcher tableaux (a, b, c) of the explicit fixed-step methods and their orders, shared by
the backends' solvers."""

# (a, b, c): stage coefficients, weights and nodes
TABLEAUS = {
    "euler": ((), (1.0,), (0.0,)),
    "midpoint": (((0.5,),), (0.0, 1.0), (0.0, 0.5)),
    "heun": (((1.0,),), (0.5, 0.5), (0.0, 1.0)),
    "rk4": (((0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)), (1 / 6, 1 / 3, 1 / 3, 1 / 6),
            (0.0, 0.5, 0.5, 1.0)),
}
ORDERS = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}
