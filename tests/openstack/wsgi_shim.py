"""Serve one OpenStack WSGI app under gunicorn.

    gunicorn --pythonpath tests/openstack --env ADMINVMS_WSGI_APP=nova.wsgi.osapi_compute wsgi_shim:application

The services' WSGI modules build their configuration at import time and
oslo.config parses sys.argv, which under gunicorn holds gunicorn's own
options (`--workers 1 ...`): parsing them fails. Clear it before the import.
Each service finds its configuration through its own environment variable
(OS_KEYSTONE_CONFIG_DIR, OS_PLACEMENT_CONFIG_DIR, OS_GLANCE_CONFIG_DIR,
OS_NOVA_CONFIG_DIR, OS_NEUTRON_CONFIG_DIR/OS_NEUTRON_CONFIG_FILES), set by up.sh.
Cinder has no such variable: its WSGI module parses sys.argv[1:] only, so
ADMINVMS_WSGI_ARGS (`--config-file .../cinder.conf`) becomes its command line.
"""

import importlib
import os
import shlex
import sys

sys.argv = sys.argv[:1] + shlex.split(os.environ.get("ADMINVMS_WSGI_ARGS", ""))
application = importlib.import_module(os.environ["ADMINVMS_WSGI_APP"]).application
