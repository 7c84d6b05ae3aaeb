#!/bin/bash
# Install busagent as a service on Raspberry Pi OS / Debian 12 or newer (`sudo make install`).
#
#   systemd/install.sh                  install on this machine (as root)
#   systemd/install.sh --root DIR       stage the files into another root (an SD card image,
#                                       a test): no account, no venv, no systemctl/udevadm
#   DESTDIR=DIR systemd/install.sh      same as --root DIR
#
# Installs: the service account (sysusers.d), a venv at /opt/busagent/venv with this source tree
# (`pip install`), busagent.service, the udev rules, /usr/local/bin/agentctl, the docs, and
# /etc/busagent: agent.toml from the example and a secrets.toml template (root 0600), each only
# when absent; an existing file is never overwritten. Running it again upgrades the code, the
# unit and the rules, and keeps the configuration.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=${DESTDIR:-/}
PYTHON=/usr/bin/python3
PREFIX=/opt/busagent
CONF=/etc/busagent

usage() {
    sed -n '2,9s/^# \{0,1\}//p' "$0"
    exit "${1:-0}"
}

parse_args() {
    while [ $# -gt 0 ]; do
        case $1 in
            --root) [ $# -ge 2 ] || usage 2; ROOT=$2; shift 2 ;;
            --root=*) ROOT=${1#--root=}; shift ;;
            --python) [ $# -ge 2 ] || usage 2; PYTHON=$2; shift 2 ;;
            -h|--help) usage 0 ;;
            *) echo "install.sh: unknown argument '$1'" >&2; usage 2 ;;
        esac
    done
    case $ROOT in
        /*) ;;
        *) echo "install.sh: --root '$ROOT' must be an absolute path" >&2; exit 2 ;;
    esac
    # R prefixes every target path: empty for this machine, "/mnt/x" for another root.
    R=${ROOT%/}
}

say() { printf '%s\n' "$*"; }
on_this_machine() { [ -z "$R" ]; }

preflight() {
    [ -f "$SRC/pyproject.toml" ] || { echo "install.sh: no pyproject.toml in $SRC" >&2; exit 1; }
    if on_this_machine; then
        if [ "$(id -u)" != 0 ]; then
            echo "install.sh: installing a system service needs root: sudo make install" >&2
            exit 1
        fi
        check_python
    else
        mkdir -p "$R"
        say "Staging into $ROOT: this machine's accounts, systemd and udev are left alone;"
        say "the venv is not built (it only works where it was built: run make install there)."
    fi
}

# A venv is tied to its interpreter: build it with the system Python the service will use.
check_python() {
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        local found
        found=$("$PYTHON" -V 2>&1 || echo "no $PYTHON")
        echo "install.sh: busagent needs Python 3.11 or newer ($found): Raspberry Pi OS Bookworm" \
            "or Debian 12 or newer" >&2
        exit 1
    fi
    if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
        if command -v apt-get >/dev/null; then
            say "Installing python3-venv (the venv module is a separate Debian package)"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
        else
            echo "install.sh: $PYTHON has no venv module; install python3-venv" >&2
            exit 1
        fi
    fi
}

install_files() {
    install -d -m 0755 "$R$PREFIX" "$R$PREFIX/docs" "$R$CONF" "$R/etc/systemd/system" \
        "$R/etc/udev/rules.d" "$R/etc/sysusers.d" "$R/usr/local/bin"
    install -m 0644 "$SRC/systemd/busagent.service" "$R/etc/systemd/system/busagent.service"
    install -m 0644 "$SRC/systemd/99-busagent.rules" "$R/etc/udev/rules.d/99-busagent.rules"
    install -m 0644 "$SRC/systemd/busagent.sysusers" "$R/etc/sysusers.d/busagent.conf"
    install -m 0644 "$SRC"/docs/*.md "$R$PREFIX/docs/"
    # The example is refreshed on every run so that an upgrade shows what is new (diff it).
    install -m 0644 "$SRC/systemd/agent.example.toml" "$R$CONF/agent.example.toml"
    ln -sfn "$PREFIX/venv/bin/agentctl" "$R/usr/local/bin/agentctl"
    say "Installed busagent.service, 99-busagent.rules, sysusers.d/busagent.conf, docs, agentctl"
}

install_config() {
    if [ -e "$R$CONF/agent.toml" ]; then
        say "Kept $CONF/agent.toml (compare with $CONF/agent.example.toml after an upgrade)"
    else
        install -m 0644 "$SRC/systemd/agent.example.toml" "$R$CONF/agent.toml"
        say "Created $CONF/agent.toml from the example: edit it for this bus"
    fi
    if [ -e "$R$CONF/secrets.toml" ]; then
        say "Kept $CONF/secrets.toml"
        warn_if_readable "$R$CONF/secrets.toml"
    else
        write_secrets_template "$R$CONF/secrets.toml"
        say "Created $CONF/secrets.toml (mode 0600): MQTT username and password go there"
    fi
}

write_secrets_template() {
    # umask first: the file never exists with a wider mode, not even for an instant.
    (
        umask 077
        cat >"$1" <<'EOF'
# busagent secrets: read only by root; busagent.service hands it to the agent
# (LoadCredential=mqtt-secrets). Used when agent.toml has [mqtt] secrets_file set.
# Keep it 0600 root: chmod 600 /etc/busagent/secrets.toml
[mqtt]
# username = "bus-tdc-01"
# password = "..."
EOF
    )
    chmod 0600 "$1"
    if on_this_machine; then chown root:root "$1"; fi
}

warn_if_readable() {
    local mode
    mode=$(stat -c '%a' "$1")
    if [ $((8#$mode & 077)) -ne 0 ]; then
        say "WARNING: $1 is mode $mode: others can read the MQTT password; chmod 600 it"
    fi
}

create_account() {
    if ! on_this_machine; then
        say "Skipped the busagent account: finish with 'sudo make install' on the target, or run"
        say "  'systemd-sysusers' there (it reads /etc/sysusers.d/busagent.conf)"
        return
    fi
    if command -v systemd-sysusers >/dev/null; then
        systemd-sysusers /etc/sysusers.d/busagent.conf
    else
        getent group gpio >/dev/null || groupadd --system gpio
        getent passwd busagent >/dev/null || useradd --system --user-group \
            --home-dir /var/lib/busagent --no-create-home --shell /usr/sbin/nologin \
            --comment "busagent bus monitoring agent" busagent
    fi
    say "Account busagent: $(id busagent)"
}

build_venv() {
    if ! on_this_machine; then
        return
    fi
    local venv=$PREFIX/venv want have
    want=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    have=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)
    if [ "$have" != "$want" ]; then
        say "Creating $venv (Python $want)"
        "$PYTHON" -m venv --clear "$venv"
    fi
    # Build from a copy: pip writes build/ and *.egg-info into the tree it builds, and this
    # checkout belongs to whoever cloned it, not to root.
    BUILD=$(mktemp -d)
    trap 'rm -rf "$BUILD"' EXIT
    tar -C "$SRC" --exclude=./.git --exclude=./.venv --exclude='*cache*' --exclude=./build \
        --exclude='*.egg-info' --exclude=./.hypothesis -cf - . | tar -C "$BUILD" -xf -
    say "Installing busagent and its dependencies into $venv (pip)"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "$BUILD"
    say "Installed $("$venv/bin/python" -c 'from importlib.metadata import version
print("busagent", version("busagent"))')"
}

reload_services() {
    if ! on_this_machine; then
        say "Skipped systemctl daemon-reload and udevadm: they act on this machine, not on $ROOT"
        return
    fi
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        if systemctl is-active --quiet busagent.service; then
            systemctl restart busagent.service
            say "Restarted busagent.service on the new code"
        fi
    else
        say "Skipped systemctl daemon-reload: systemd is not running here"
    fi
    if command -v udevadm >/dev/null && udevadm control --ping 2>/dev/null; then
        udevadm control --reload
        udevadm trigger --action=change --subsystem-match=tty
        say "Reloaded the udev rules (/dev/busagent-* for devices already plugged in)"
    else
        say "Skipped the udev reload: udevd is not running here"
    fi
}

next_steps() {
    cat <<EOF

Next steps:
  1. Describe this bus:           sudoedit $CONF/agent.toml
     (devices: /dev/busagent-modem, /dev/busagent-gps, /dev/busagent-vedirect; see
      $PREFIX/docs/hardware.md). MQTT login: sudoedit $CONF/secrets.toml
  2. Check the file:              agentctl config check
  3. Read every device once:      sudo agentctl probe
  4. Start now and at every boot: sudo systemctl enable --now busagent
  5. See what it sees:            agentctl status      (logs: journalctl -u busagent)
  6. Let a technician use agentctl status/stops/test without sudo:
                                  sudo usermod -aG busagent <login>   (then log in again)
EOF
}

main() {
    parse_args "$@"
    preflight
    # The venv first: a failed download leaves the machine as it was.
    build_venv
    install_files
    install_config
    create_account
    reload_services
    next_steps
}

main "$@"
