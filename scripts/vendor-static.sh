#!/usr/bin/env bash
# Re-vendor the front-end libraries under static/vendor/ from the npm registry.
# Run by hand when upgrading; the result is committed, so nothing is fetched at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
BOOTSTRAP=5.3.9 HTMX=2.0.11 ICONS=1.13.2
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "bootstrap@$BOOTSTRAP" "htmx.org@$HTMX" "bootstrap-icons@$ICONS" >/dev/null)
for tgz in "$work"/*.tgz; do mkdir -p "${tgz%.tgz}" && tar -xzf "$tgz" -C "${tgz%.tgz}"; done
dest=static/vendor; rm -rf "$dest"; mkdir -p "$dest"/{bootstrap,htmx,bootstrap-icons/fonts}
cp "$work/bootstrap-$BOOTSTRAP/package/dist/css/bootstrap.min.css" "$work/bootstrap-$BOOTSTRAP/package/dist/js/bootstrap.bundle.min.js" \
   "$work/bootstrap-$BOOTSTRAP/package/LICENSE" "$dest/bootstrap/"
cp "$work/htmx.org-$HTMX/package/dist/htmx.min.js" "$work/htmx.org-$HTMX/package/LICENSE" "$dest/htmx/"
cp "$work/bootstrap-icons-$ICONS/package/font/bootstrap-icons.min.css" "$work/bootstrap-icons-$ICONS/package/LICENSE" "$dest/bootstrap-icons/"
cp "$work/bootstrap-icons-$ICONS/package/font/fonts/"bootstrap-icons.woff* "$dest/bootstrap-icons/fonts/"
printf 'bootstrap %s\nhtmx.org %s\nbootstrap-icons %s\n' "$BOOTSTRAP" "$HTMX" "$ICONS" > "$dest/VERSIONS"
echo "vendored into $dest: $(tr '\n' ' ' < "$dest/VERSIONS")"
