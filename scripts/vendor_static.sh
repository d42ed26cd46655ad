#!/usr/bin/env bash
# Copy the third-party browser assets Trainyard serves into static/vendor/.
#
# The platform must work offline, so the files are committed: running Trainyard needs no npm.
# Re-run this script only to change a version (edit the pins below, run it, commit the result).
# It npm-installs the exact pinned versions into a temporary folder and copies out the one file
# the pages load from each package, plus its licence.
set -euo pipefail

BOOTSTRAP_VERSION="5.3.9"
SOCKET_IO_CLIENT_VERSION="4.8.4"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
vendor_dir="$repo_root/static/vendor"

command -v npm >/dev/null 2>&1 || {
    echo "vendor_static: npm is needed (apt-get install -y npm)" >&2
    exit 1
}

work_dir="$(mktemp -d)"
trap 'rm -rf "$work_dir"' EXIT

echo "vendor_static: installing bootstrap@$BOOTSTRAP_VERSION socket.io-client@$SOCKET_IO_CLIENT_VERSION"
(
    cd "$work_dir"
    printf '{"name":"trainyard-vendor","private":true}\n' > package.json
    npm install --no-audit --no-fund --ignore-scripts --loglevel=error --save-exact \
        "bootstrap@$BOOTSTRAP_VERSION" "socket.io-client@$SOCKET_IO_CLIENT_VERSION"
)
modules="$work_dir/node_modules"

mkdir -p "$vendor_dir/bootstrap/css" "$vendor_dir/socket.io"
cp "$modules/bootstrap/dist/css/bootstrap.min.css" "$vendor_dir/bootstrap/css/bootstrap.min.css"
cp "$modules/bootstrap/LICENSE" "$vendor_dir/bootstrap/LICENSE"
cp "$modules/socket.io-client/dist/socket.io.min.js" "$vendor_dir/socket.io/socket.io.min.js"
cp "$modules/socket.io-client/LICENSE" "$vendor_dir/socket.io/LICENSE"

# The minified files end with a sourceMappingURL comment; the maps are not vendored, so drop the
# comment to keep browsers' developer tools from asking the server for a file that is not there.
sed -i '/^\/\*# sourceMappingURL=.*\*\/$/d' "$vendor_dir/bootstrap/css/bootstrap.min.css"
sed -i 's|//# sourceMappingURL=[^ ]*$||' "$vendor_dir/socket.io/socket.io.min.js"

cat > "$vendor_dir/README.md" <<README
# Vendored browser assets

Committed copies of third-party files the pages load from \`/static/vendor/\`, so Trainyard runs
offline and needs no npm at run time. Do not edit them by hand: change the pins in
\`scripts/vendor_static.sh\`, run \`bash scripts/vendor_static.sh\`, and commit the result.

| file | npm package | version | licence |
|---|---|---|---|
| \`bootstrap/css/bootstrap.min.css\` | \`bootstrap\` (\`dist/css/bootstrap.min.css\`) | $BOOTSTRAP_VERSION | MIT, \`bootstrap/LICENSE\` |
| \`socket.io/socket.io.min.js\` | \`socket.io-client\` (\`dist/socket.io.min.js\`) | $SOCKET_IO_CLIENT_VERSION | MIT, \`socket.io/LICENSE\` |

The socket.io client 4.x speaks Engine.IO protocol v4 / Socket.IO protocol v5, which is what the
server side (python-socketio 5.x under Flask-SocketIO 5.7) speaks. Bootstrap's JavaScript is not
vendored: the pages use only its CSS.

The trailing \`sourceMappingURL\` comments are removed (the source maps are not vendored).
README

echo "vendor_static: wrote $(cd "$repo_root" && find static/vendor -type f | sort | tr '\n' ' ')"
