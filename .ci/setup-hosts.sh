#!/usr/bin/env bash
# Prepare a CI runner (as root) for the real-host integration tests (tests/infra).
#
# Installs what the fixtures run (sshd, nginx, git, rsync, util-linux namespaces)
# and makes sure ports 22 and 80 of the loopback addresses 127.0.0.10-14 are
# free: a packaged nginx or sshd listening on the wildcard address 0.0.0.0 owns
# those ports on every 127.x address. Listeners bound to a specific non-loopback
# address do not conflict and are left alone. Users www/git, host keys, configs
# and the namespaces themselves are created by the pytest fixtures.
#
# Idempotent; safe to run on every CI job.
set -euo pipefail

readonly ADDRESSES=(127.0.0.10 127.0.0.11 127.0.0.12 127.0.0.13 127.0.0.14)
readonly PACKAGES=(openssh-server openssh-client rsync git nginx-light util-linux iproute2 procps gettext)
readonly POLICY_RC=/usr/sbin/policy-rc.d

log() { printf 'setup-hosts: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

install_packages() {
    # Keep apt from starting the packaged daemons at all (they would take
    # 0.0.0.0:22/80); only when no policy is in place already, e.g. in Docker.
    if [[ ! -e $POLICY_RC ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$POLICY_RC"
        chmod 0755 "$POLICY_RC"
        trap 'rm -f "$POLICY_RC"' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"
}

# Listeners on 0.0.0.0:PORT or *:PORT (ss shows a dual-stack [::] socket as "*").
wildcard_listeners() {
    ss -Hltnp "sport = :$1" | awk -v port="$1" '$4 == "0.0.0.0:" port || $4 == "*:" port'
}

stop_service() {
    if [[ -d /run/systemd/system ]]; then
        systemctl stop "$@" >/dev/null 2>&1 || true
    elif command -v service >/dev/null; then
        local name
        for name in "$@"; do
            service "${name%.*}" stop >/dev/null 2>&1 || true
        done
    fi
}

wait_port_released() {
    local port=$1 _
    for _ in $(seq 50); do
        [[ -z $(wildcard_listeners "$port") ]] && return 0
        sleep 0.2
    done
    return 1
}

free_wildcard_port() {
    local port=$1
    shift
    [[ -z $(wildcard_listeners "$port") ]] && return 0
    log "stopping $* (listening on the wildcard address, port $port)"
    stop_service "$@"
    if ! wait_port_released "$port" && [[ $port == 80 ]]; then
        nginx -s quit >/dev/null 2>&1 || true  # an nginx started by hand, not by the service
        wait_port_released "$port" || true
    fi
    if [[ -n $(wildcard_listeners "$port") ]]; then
        die "port $port is still taken on the wildcard address: $(wildcard_listeners "$port")"
    fi
}

ensure_loopback_addresses() {
    local address
    for address in "${ADDRESSES[@]}"; do
        # Linux routes all of 127.0.0.0/8 to lo; some sandboxes only have 127.0.0.1/32.
        if ! ip -4 route get "$address" | grep -q '^local '; then
            log "adding $address/32 to lo"
            ip addr add "$address/32" dev lo
        fi
    done
}

check_ports_free() {
    local address port line
    for address in "${ADDRESSES[@]}"; do
        for port in 22 80 2214; do
            line=$(ss -Hltnp "src $address:$port" || true)
            [[ -z $line ]] && continue
            if [[ $line =~ pid=([0-9]+) ]] && grep -qa '/tmp/walle-infra/' "/proc/${BASH_REMATCH[1]}/cmdline"; then
                log "note: $address:$port is held by a leftover test host; the fixtures will kill it"
            else
                die "$address:$port is taken: $line"
            fi
        done
    done
}

check_namespaces() {
    # Unprivileged containers are root without CAP_SYS_ADMIN: fail here, clearly.
    unshare --mount --pid --fork --mount-proc true \
        || die "cannot create mount/pid namespaces (run the job privileged / not in an unprivileged container)"
}

main() {
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    install_packages
    free_wildcard_port 80 nginx.service
    free_wildcard_port 22 ssh.socket ssh.service
    install -d -m 0755 /run/sshd  # sshd's privilege separation directory
    ensure_loopback_addresses
    check_ports_free
    check_namespaces
    log "ok: 127.0.0.10-14 ready for the test hosts"
}

main "$@"
