# The docker backend's test infrastructure: a Docker Engine that answers
# (installed and started when missing) and the test images, built offline.
.PHONY: docker-up

## docker-up: make sure a Docker Engine answers and the test images exist
docker-up:
	@bash scripts/ensure-docker.sh

# The driver tests run against the real engine.
test: docker-up
