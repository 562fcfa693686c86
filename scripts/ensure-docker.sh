#!/usr/bin/env bash
# Make sure a Docker Engine answers (DOCKER_HOST, or the default local socket)
# and that the images the docker driver's tests use exist. On a fresh Debian
# machine: install Debian's docker.io, start dockerd in the background, and
# build the images offline (`docker import` of a rootfs made from Debian's
# static busybox; no registry is needed). Idempotent and quick when done;
# prints one line per step.
set -euo pipefail

SCRIPT_NAME=ensure-docker
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

DEFAULT_SOCKET=/var/run/docker.sock
DOCKERD_LOG=${ADMINVMS_DOCKERD_LOG:-/var/log/adminvms-dockerd.log}
DOCKERD_PIDFILE=${ADMINVMS_DOCKERD_PIDFILE:-/var/run/adminvms-dockerd.pid}
# The docker backend makes one bridge network per project; the engine's default
# pools hold about 30 networks, this one 256.
read -r -a DOCKERD_ARGS <<<"${ADMINVMS_DOCKERD_ARGS:---default-address-pool base=10.213.0.0/16,size=24}"
# Bump when an image's recipe below changes: images with another revision are rebuilt.
IMAGE_REVISION=1

# The CLI talks to whatever DOCKER_HOST names; root is needed for the default
# socket unless the user is in the docker group.
DOCKER=(docker)
answers() { "${DOCKER[@]}" info >/dev/null 2>&1; }

# --- the engine ---------------------------------------------------------------------
if ! command -v docker >/dev/null || ! command -v dockerd >/dev/null; then
  if [ -n "${DOCKER_HOST:-}" ] && command -v docker >/dev/null; then
    : # a remote engine needs only the client
  else
    say "Docker is missing: installing Debian's docker.io"
    apt_quiet install -y -qq docker.io
  fi
fi
if [ "$(id -u)" != 0 ] && [ -z "${DOCKER_HOST:-}" ] && ! [ -w "$DEFAULT_SOCKET" ] && [ -e "$DEFAULT_SOCKET" ]; then
  DOCKER=(sudo docker)
fi

if answers; then
  say "Docker Engine answers on ${DOCKER_HOST:-unix://$DEFAULT_SOCKET}"
elif [ -n "${DOCKER_HOST:-}" ] && [ "$DOCKER_HOST" != "unix://$DEFAULT_SOCKET" ]; then
  say "DOCKER_HOST names $DOCKER_HOST, which does not answer"; exit 1
else
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    say "starting dockerd with systemd"
    as_root systemctl start docker
  else
    say "starting dockerd in the background (log $DOCKERD_LOG, pidfile $DOCKERD_PIDFILE)"
    # A pidfile left by a dockerd that died would make the new one refuse to start.
    if [ -f "$DOCKERD_PIDFILE" ] && ! as_root kill -0 "$(cat "$DOCKERD_PIDFILE")" 2>/dev/null; then
      as_root rm -f "$DOCKERD_PIDFILE"
    fi
    as_root mkdir -p "$(dirname "$DOCKERD_LOG")"
    as_root setsid nohup dockerd --pidfile "$DOCKERD_PIDFILE" "${DOCKERD_ARGS[@]}" >>"$DOCKERD_LOG" 2>&1 </dev/null &
  fi
  [ "$(id -u)" = 0 ] || DOCKER=(sudo docker)
  for _ in $(seq 1 120); do answers && break; sleep 0.5; done
  answers || { say "dockerd did not answer within 60 s; see $DOCKERD_LOG"; tail -n 20 "$DOCKERD_LOG" >&2 || true; exit 1; }
  say "Docker Engine answers on unix://$DEFAULT_SOCKET"
fi

# --- the test images ------------------------------------------------------------------
current() {  # the image exists with this recipe's revision
  [ "$("${DOCKER[@]}" image inspect --format '{{ index .Config.Labels "adminvms.image-revision" }}' "$1" 2>/dev/null)" \
    = "$IMAGE_REVISION" ]
}

BUSYBOX=""
find_busybox() {  # a statically linked busybox, without replacing the host's own busybox package
  [ -n "$BUSYBOX" ] && return 0
  if dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "ok installed"; then
    BUSYBOX=/bin/busybox
    return 0
  fi
  say "fetching Debian's busybox-static (unpacked in a temporary directory, not installed)"
  (cd "$WORK" && apt_quiet -o APT::Sandbox::User=root download busybox-static && dpkg-deb -x busybox-static_*.deb "$WORK/pkg")
  BUSYBOX="$WORK/pkg/bin/busybox"
}

rootfs() {  # rootfs DIR: busybox with one symlink per applet, and the few files programs expect
  local dir=$1
  mkdir -p "$dir"/{bin,etc,tmp,proc,sys,dev,root,www}
  cp "$BUSYBOX" "$dir/bin/busybox"
  for applet in $("$dir/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$dir/bin/$applet"
  done
  chmod 1777 "$dir/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$dir/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
}

build() {  # build NAME CMD-JSON DIR
  local old
  old=$("${DOCKER[@]}" image inspect --format '{{ .Id }}' "$1" 2>/dev/null || true)
  tar -C "$3" -c . | "${DOCKER[@]}" import \
    --change "CMD $2" \
    --change "ENV PATH=/bin" \
    --change "LABEL adminvms.image-revision=$IMAGE_REVISION" \
    - "$1" >/dev/null
  # The previous revision, now untagged (kept if a container still uses it).
  [ -z "$old" ] || "${DOCKER[@]}" image rm "$old" >/dev/null 2>&1 || true
}

WORK=""
cleanup() { [ -z "$WORK" ] || rm -rf "$WORK"; }
trap cleanup EXIT

BUSYBOX_IMAGE=adminvms/busybox:test
if current "$BUSYBOX_IMAGE"; then
  say "image $BUSYBOX_IMAGE is present"
else
  WORK=${WORK:-$(mktemp -d)}; chmod 755 "$WORK"
  find_busybox
  rootfs "$WORK/busybox"
  build "$BUSYBOX_IMAGE" '["sleep", "2147483647"]' "$WORK/busybox"
  say "built image $BUSYBOX_IMAGE"
fi

GUI_IMAGE=adminvms/appliance-gui:test
if current "$GUI_IMAGE"; then
  say "image $GUI_IMAGE is present"
else
  WORK=${WORK:-$(mktemp -d)}; chmod 755 "$WORK"
  find_busybox
  dir="$WORK/appliance-gui"
  rootfs "$dir"
  mkdir -p "$dir/www/cgi-bin" "$dir/www/sub"
  cat >"$dir/www/index.html" <<'HTML'
<!doctype html>
<html><head><title>adminvms appliance GUI</title></head>
<body><h1>adminvms appliance GUI</h1>
<p>Served by the appliance's own web server. <a href="sub/page.html">A page below</a>.</p></body></html>
HTML
  printf '<!doctype html><p>adminvms appliance sub page</p>\n' >"$dir/www/sub/page.html"
  # For the GUI proxy's tests: a redirect that leaves the appliance, one that
  # stays inside it, and an echo of the request headers the appliance received.
  cat >"$dir/www/cgi-bin/redirect-out" <<'SH'
#!/bin/sh
printf 'Status: 302 Found\r\nLocation: http://169.254.169.254/latest/meta-data/\r\nContent-Type: text/plain\r\n\r\nmoved\n'
SH
  cat >"$dir/www/cgi-bin/redirect-in" <<'SH'
#!/bin/sh
printf 'Status: 302 Found\r\nLocation: /sub/page.html\r\nContent-Type: text/plain\r\n\r\nmoved\n'
SH
  cat >"$dir/www/cgi-bin/headers" <<'SH'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
env | grep -E '^(HTTP_|REQUEST_|QUERY_STRING|REMOTE_ADDR)' | sort
SH
  chmod 755 "$dir"/www/cgi-bin/*
  build "$GUI_IMAGE" '["httpd", "-f", "-p", "8080", "-h", "/www"]' "$dir"
  say "built image $GUI_IMAGE"
fi

# For the browser test: an appliance whose page is hostile. Its script tries what
# a page of the dashboard's origin could do (read the dashboard's cookies, call its
# API with them, frame it, reach the window that opened it) and writes what it got
# into #report. An image of its own, so that the GUI image above stays as it is.
HOSTILE_IMAGE=adminvms/appliance-hostile:test
if current "$HOSTILE_IMAGE"; then
  say "image $HOSTILE_IMAGE is present"
else
  WORK=${WORK:-$(mktemp -d)}; chmod 755 "$WORK"
  find_busybox
  dir="$WORK/appliance-hostile"
  rootfs "$dir"
  printf '<!doctype html><title>adminvms appliance GUI</title><h1>adminvms appliance GUI</h1>\n' >"$dir/www/index.html"
  cat >"$dir/www/hostile.html" <<'HTML'
<!doctype html>
<html><head><title>adminvms appliance GUI (hostile page)</title></head>
<body><h1>adminvms appliance GUI</h1>
<p>This page tries to reach the dashboard that opened it.</p>
<pre id="report">running</pre>
<script>
(async () => {
  const port = location.port ? ":" + location.port : "";
  const dashboards = [location.protocol + "//localhost" + port, location.protocol + "//127.0.0.1" + port];
  const report = {origin: location.origin, cookie: document.cookie, opener: String(window.opener), tries: []};
  const attempt = async (what, run) => {
    try { report.tries.push({what, got: await run()}); }
    catch (e) { report.tries.push({what, blocked: e.name + ": " + e.message}); }
  };
  for (const dashboard of dashboards) {
    await attempt("GET " + dashboard + "/api/v1/me/", async () => {
      const r = await fetch(dashboard + "/api/v1/me/", {credentials: "include"});
      return r.status + " " + (await r.text()).slice(0, 200);
    });
    await attempt("POST " + dashboard + "/api/v1/instances/", async () => {
      const body = new URLSearchParams({name: "pwned-by-appliance", category: "standard"});
      const r = await fetch(dashboard + "/api/v1/instances/",
                            {method: "POST", credentials: "include", mode: "no-cors", body});
      return r.type + " " + r.status;
    });
    await attempt("frame " + dashboard + "/portal/", () => new Promise((resolve, reject) => {
      const frame = document.createElement("iframe");
      frame.src = dashboard + "/portal/";
      frame.onload = () => {
        try { resolve("read: " + frame.contentDocument.cookie); } catch (e) { reject(e); }
      };
      document.body.appendChild(frame);
      setTimeout(() => reject(new Error("no load")), 3000);
    }));
  }
  await attempt("GET /api/v1/me/ on this origin", async () => {
    const r = await fetch("/api/v1/me/", {credentials: "include"});
    return r.status + " " + (await r.text()).slice(0, 200);
  });
  document.getElementById("report").textContent = JSON.stringify(report);
  document.body.dataset.done = "1";
})();
</script></body></html>
HTML
  build "$HOSTILE_IMAGE" '["httpd", "-f", "-p", "8080", "-h", "/www"]' "$dir"
  say "built image $HOSTILE_IMAGE"
fi
