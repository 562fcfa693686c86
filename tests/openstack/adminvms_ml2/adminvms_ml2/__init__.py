"""ML2 mechanism driver for the adminvms test control plane (see mech_driver)."""
