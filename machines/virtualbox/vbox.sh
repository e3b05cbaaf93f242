# shellcheck shell=sh
# VirtualBox backend: what create-vm and delete-vm share (sourced after ../lib.sh, POSIX sh).
#
# Everything goes through VBoxManage. Its progress output goes to standard error: the scripts'
# standard output stays empty.

# The files create makes inside ETCD_VM_STATE_DIR (check_state_dir refuses anything else):
#   seed/         user-data (secret), meta-data, network-config, seed.iso (SATA port 2, DVD)
#   NAME/         the clone's folder (clonevm --basefolder): NAME.vbox, its system disk, Logs/
#   data.vdi      the data disk (SATA port 1, serial etcd-data)
#   console.log   the serial console (UART 1, ttyS0)
vbox_state_entries() {
    echo seed "$ETCD_VM_NAME" data.vdi console.log
}

vbox_require_tool() {
    command -v VBoxManage >/dev/null 2>&1 ||
        die "VBoxManage not found: install VirtualBox (7.x) and put VBoxManage on PATH"
}

# vbox_vm_exists NAME: is a VM called NAME registered?
vbox_vm_exists() {
    VBoxManage showvminfo "$1" --machinereadable >/dev/null 2>&1
}

# vbox_vm_state NAME: VMState of showvminfo (poweroff, running, aborted, saved, ...); empty when
# the VM is not registered.
vbox_vm_state() {
    VBoxManage showvminfo "$1" --machinereadable 2>/dev/null | sed -n 's/^VMState="\(.*\)"$/\1/p'
}

# vbox_vm_alive STATE: does a VM in this VMState still run (or is about to)?
vbox_vm_alive() {
    case $1 in
        running | starting | restoring | paused | teleporting | livesnapshotting | onlinesnapshotting)
            return 0 ;;
        *) return 1 ;;
    esac
}

# vbox_mac MAC: 52:54:00:ab:cd:ef -> 525400ABCDEF, the form VBoxManage --macaddressN takes.
vbox_mac() {
    hex=$(printf '%s' "$1" | tr -d ':' | tr 'abcdef' 'ABCDEF')
    case $hex in
        [0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F]) ;;
        *) die "'$1' is not a MAC address (six hexadecimal pairs separated by colons)" ;;
    esac
    echo "$hex"
}

# vbox_abs_dir DIR: DIR as an absolute path (VirtualBox resolves relative paths against its own
# working directory, not ours). DIR need not exist.
vbox_abs_dir() {
    if [ -d "$1" ]; then
        (cd "$1" && pwd -P)
    else
        case $1 in
            /*) echo "$1" ;;
            *) echo "$(pwd -P)/$1" ;;
        esac
    fi
}

# vbox_remove_vm NAME: power the VM off when it runs, then unregister it and delete its files
# (settings, logs and the hard disks attached to it). VirtualBox releases the VM's session a
# moment after poweroff returns; until then unregistervm fails with "locked": retry for a while.
# Succeeds when no VM called NAME is registered.
vbox_remove_vm() {
    vm=$1
    vbox_vm_exists "$vm" || return 0
    echo "$0: removing VirtualBox VM $vm" >&2
    tries=0
    while :; do
        vm_state=$(vbox_vm_state "$vm")
        [ -n "$vm_state" ] || return 0
        if vbox_vm_alive "$vm_state"; then
            # Fails with "not currently running" when it stopped meanwhile: the loop looks again.
            VBoxManage controlvm "$vm" poweroff >/dev/null 2>&1 || true
        fi
        if unregister_output=$(VBoxManage unregistervm "$vm" --delete 2>&1); then
            return 0
        fi
        tries=$((tries + 1))
        if [ "$tries" -ge 60 ]; then
            printf '%s\n' "$unregister_output" >&2
            die "could not unregister $vm (state: ${vm_state:-unknown}) within 60 s"
        fi
        sleep 1
    done
}

# vbox_forget_media DIR: close every hard disk and DVD image registered with VirtualBox whose
# file is inside DIR (an absolute path), deleting hard disks' files. Run after vbox_remove_vm:
# it picks up media that were created or opened but never attached (a create that failed
# half-way) and the seed ISO, which unregistering the VM may leave in the media registry.
vbox_forget_media() {
    media_dir=$1
    for media_kind in hdds dvds; do
        VBoxManage list "$media_kind" | sed -n 's/^Location:[[:space:]]*//p' |
            while IFS= read -r location; do
                case $location in
                    "$media_dir"/*) ;;
                    *) continue ;;
                esac
                if [ "$media_kind" = hdds ]; then
                    if [ -e "$location" ]; then
                        VBoxManage closemedium disk "$location" --delete >&2
                    else
                        VBoxManage closemedium disk "$location" >&2
                    fi
                else
                    VBoxManage closemedium dvd "$location" >&2
                fi
            done
    done
}
