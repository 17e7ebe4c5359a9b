"""Services: SimPy processes with an inbox, talking over the simulated network."""

__all__: list[str] = []
