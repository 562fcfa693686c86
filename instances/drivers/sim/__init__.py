"""The simulated cloud: the ``sim`` driver and the state of its servers.

A Django app of its own (label ``sim``): its ``SimServer`` rows are the
simulated cloud's state, not our domain, so they live beside the driver.
"""
