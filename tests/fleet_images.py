"""The fleet tests' appliance images, derived offline (``docker commit``) from the GUI test image of
scripts/ensure-docker.sh: httpd runs in the background and the container's main process sleeps, so
killing httpd behind adminvms' back leaves a running container whose appliance no longer answers.
Each serves its version at ``/version`` and the addresses it started with at ``/whoami``. Used by
tests/test_docker_fleet.py and benchmarks/bench_fleet.py; they stay on the engine for the next run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json

import docker.errors

APPLIANCE = "adminvms/appliance-gui:test"
FLEET_IMAGE = "adminvms/fleet-appliance"
SERVE = 'echo "$APPLIANCE_VERSION" >/www/version; ip -4 addr >/www/whoami; httpd -p 8080 -h /www; exec sleep 2147483647'
# Tag → (command, version): two versions that serve, and one whose appliance never answers.
RECIPES = {
    "1": (["sh", "-c", SERVE], "1"),
    "2": (["sh", "-c", SERVE], "2"),
    "mute": (["sleep", "2147483647"], "3"),
}


def fleet_images(engine) -> dict[str, str]:
    """Tag → image reference of the fleet's images, made when missing or when their recipe changed."""
    base = engine.images.get(APPLIANCE)
    references = {}
    for tag, (command, version) in RECIPES.items():
        reference = f"{FLEET_IMAGE}:{tag}"
        recipe = hashlib.sha256(json.dumps([base.id, command, version]).encode()).hexdigest()[:16]
        try:
            previous = engine.images.get(reference)
        except docker.errors.ImageNotFound:
            previous = None
        if previous is None or previous.labels.get("adminvms.test-recipe") != recipe:
            scratch = engine.containers.create(APPLIANCE)
            try:
                changes = [f"CMD {json.dumps(command)}", f"ENV APPLIANCE_VERSION={version}"]
                scratch.commit(FLEET_IMAGE, tag, changes=[*changes, f"LABEL adminvms.test-recipe={recipe}"])
            finally:
                scratch.remove(force=True)
            if previous is not None:  # the old recipe's image, now untagged (kept if a container still uses it)
                with contextlib.suppress(docker.errors.APIError):
                    engine.images.remove(previous.id)
        references[tag] = reference
    return references
