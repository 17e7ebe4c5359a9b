"""Services: SimPy processes with an inbox, talking over the simulated network."""
