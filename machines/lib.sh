# shellcheck shell=sh
# Shared by the local backends' create and delete scripts (sourced, POSIX sh).
#
# The program (components/qemu.py, components/virtualbox.py) runs the scripts through
# pulumi-command's local.Command: the member's user-data on stdin, everything else in ETCD_VM_*
# environment variables, the project directory as the working directory. The seed documents
# (meta-data, network-config) arrive already rendered by the program's YAML serializer.

die() {
    echo "$0: $*" >&2
    exit 1
}

require_env() {
    for variable in "$@"; do
        eval "value=\${$variable-}"
        # shellcheck disable=SC2154 # set by the eval above
        [ -n "$value" ] || die "environment variable $variable is not set (the program sets it)"
    done
}

require_whole_numbers() {
    for variable in "$@"; do
        eval "value=\${$variable-}"
        # shellcheck disable=SC2154 # set by the eval above
        case $value in
            '' | *[!0-9]*) die "$variable must be a whole number, got '$value'" ;;
        esac
    done
}

# write_seed DIR: user-data from stdin, meta-data and network-config from the environment, then
# a NoCloud `cidata` ISO at DIR/seed.iso. The user-data holds private keys: only the owner may
# read the directory.
write_seed() {
    seed_dir=$1
    (umask 077 && mkdir -p "$seed_dir")
    cat >"$seed_dir/user-data"
    [ -s "$seed_dir/user-data" ] || die "no user-data on standard input"
    printf '%s\n' "$ETCD_VM_META_DATA" >"$seed_dir/meta-data"
    printf '%s\n' "$ETCD_VM_NETWORK_CONFIG" >"$seed_dir/network-config"
    if command -v cloud-localds >/dev/null 2>&1; then
        cloud-localds --network-config="$seed_dir/network-config" "$seed_dir/seed.iso" \
            "$seed_dir/user-data" "$seed_dir/meta-data"
    else
        for tool in genisoimage mkisofs xorrisofs; do
            if command -v "$tool" >/dev/null 2>&1; then
                "$tool" -quiet -output "$seed_dir/seed.iso" -volid cidata -joliet -rock \
                    "$seed_dir/user-data" "$seed_dir/meta-data" "$seed_dir/network-config"
                return
            fi
        done
        die "no ISO tool: install cloud-image-utils (cloud-localds) or genisoimage"
    fi
}

# wait_for_cloud_init SERIAL_LOG TIMEOUT_SECONDS PIDFILE_OR_EMPTY: wait until cloud-init prints
# its final message on the serial console. Fails when the time is up or the VM process is gone,
# showing the end of the console log.
wait_for_cloud_init() {
    serial_log=$1
    timeout=$2
    pidfile=$3
    deadline=$(($(date +%s) + timeout))
    until grep -q "Cloud-init v\. .* finished at" "$serial_log" 2>/dev/null; do
        if [ -n "$pidfile" ] && ! kill -0 "$(cat "$pidfile" 2>/dev/null || echo 0)" 2>/dev/null; then
            tail -n 40 "$serial_log" >&2 2>/dev/null || true
            die "the VM stopped before cloud-init finished (console: $serial_log)"
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            tail -n 40 "$serial_log" >&2 2>/dev/null || true
            die "cloud-init did not finish within $timeout s (console: $serial_log)"
        fi
        sleep 2
    done
    echo "$0: cloud-init finished on $ETCD_VM_NAME" >&2
}

# vm_process_pid PIDFILE NAME: print the PID in PIDFILE if that process is still the VM called
# NAME (one of its arguments is exactly NAME, e.g. QEMU's `-name NAME`); print nothing when the
# file is missing or the PID is gone, a zombie or now some other process.
vm_process_pid() {
    [ -r "$1" ] || return 0
    pid=$(tr -dc '0-9' <"$1")
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 0
    if tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "$2"; then
        echo "$pid"
    fi
}

# stop_vm_process PIDFILE NAME: stop the VM process named in PIDFILE, only after checking it is
# the VM called NAME (never a process that reused the PID): SIGTERM, up to 30 s, then SIGKILL.
# Succeeds when the process is already gone.
stop_vm_process() {
    pid=$(vm_process_pid "$1" "$2")
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    waited=0
    while [ -n "$(vm_process_pid "$1" "$2")" ]; do
        if [ "$waited" -ge 30 ]; then
            echo "$0: $2 (pid $pid) ignored SIGTERM for 30 s; sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        if [ "$waited" -ge 40 ]; then
            die "could not stop $2 (pid $pid)"
        fi
        sleep 1
        waited=$((waited + 1))
    done
}

# check_state_dir DIR ENTRY...: DIR is missing or a directory holding nothing but the named
# entries (what create makes), so it is safe to remove. Guards against ETCD_VM_STATE_DIR
# pointing at a directory of something else.
check_state_dir() {
    state_dir=$1
    shift
    case $state_dir in
        / | . | .. | */. | */..) die "refusing state directory '$state_dir'" ;;
    esac
    [ -e "$state_dir" ] || [ -L "$state_dir" ] || return 0
    if [ ! -d "$state_dir" ] || [ -L "$state_dir" ]; then
        die "$state_dir is not a directory: refusing to use it as a VM state directory"
    fi
    for entry in "$state_dir"/* "$state_dir"/.*; do
        name=${entry##*/}
        case $name in . | ..) continue ;; esac
        [ -e "$entry" ] || [ -L "$entry" ] || continue # an unmatched pattern
        known=no
        for allowed in "$@"; do
            [ "$name" != "$allowed" ] || known=yes
        done
        [ "$known" = yes ] ||
            die "$state_dir holds $name, which no VM script made: refusing to remove it"
    done
}
