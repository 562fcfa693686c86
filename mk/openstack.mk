# The OpenStack control plane for tests (tests/openstack/): Keystone, Placement,
# Glance, Neutron (ML2, no agents), Nova with its fake virt driver and Cinder
# with its fake volume driver, serving on 127.0.0.1 from their own venv outside
# the checkout. It needs nothing from the app's venv. See tests/openstack/README.md.
.PHONY: openstack-up openstack-down openstack-smoke

## openstack-up: bring up the test OpenStack control plane (idempotent; writes .openstack/clouds.yaml)
openstack-up:
	@bash tests/openstack/up.sh

## openstack-down: stop the test OpenStack control plane (MariaDB, RabbitMQ and the databases stay)
openstack-down:
	@bash tests/openstack/down.sh

## openstack-smoke: boot, lock and delete servers, attach a volume, on the test control plane, with timings
openstack-smoke: openstack-up
	@.openstack/python tests/openstack/smoke.py

# The openstack driver tests run against this control plane.
test: openstack-up
