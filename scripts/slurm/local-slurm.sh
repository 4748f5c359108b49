#!/usr/bin/env bash
# local-slurm.sh - a single-node Slurm on localhost, for tests and demos
# (../shared/TOOLCHAIN.md section 4; Debian's slurm-wlm and munge packages).
#
#   scripts/slurm/local-slurm.sh start    # writes $TS_SLURM_DIR/slurm.conf, starts
#                                         # munged (unless one runs), slurmctld, slurmd;
#                                         # waits until the node is idle
#   scripts/slurm/local-slurm.sh stop     # stops, by PID, only the daemons it started
#   scripts/slurm/local-slurm.sh status
#   scripts/slurm/local-slurm.sh env      # prints "export SLURM_CONF=..." for clients
#
# Everything Slurm writes (config, state, spool, logs, PID files) stays under
# TS_SLURM_DIR (default /tmp/tetriserve-slurm); nothing under /etc/slurm is
# touched, so clients need SLURM_CONF=$TS_SLURM_DIR/slurm.conf (see `env`).
# munged runs the system way (user munge, /etc/munge/munge.key, socket in
# /run/munge): an already running munged is reused and left running.
# The node is declared with TS_SLURM_CPUS CPUs (default 8) whatever the
# machine has (SlurmdParameters=config_overrides), so that jobs of several
# ranks run on a 2-core machine without --overcommit; MpiDefault=pmix
# because Debian's Open MPI only speaks PMIx to srun.
# Runs as root (the daemons' SlurmUser and SlurmdUser).
set -euo pipefail
DIR=${TS_SLURM_DIR:-/tmp/tetriserve-slurm}
CPUS=${TS_SLURM_CPUS:-8}
CTLD_PORT=${TS_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${TS_SLURM_SLURMD_PORT:-6818}
TIMEOUT_S=${TS_SLURM_TIMEOUT_S:-20}
export SLURM_CONF=$DIR/slurm.conf

die() { echo "local-slurm: $*" >&2; exit 1; }
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
pid_of() { [ -s "$1" ] && cat "$1" || true; }

# wait_gone PID SECONDS: 0 once PID has exited, 1 on timeout.
wait_gone() {
    local pid=$1 n=$(($2 * 10))
    while alive "$pid" && [ $n -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
    ! alive "$pid"
}

write_conf() {
    mkdir -p "$DIR/ctld" "$DIR/slurmd"
    cat >"$SLURM_CONF" <<EOF
# Written by scripts/slurm/local-slurm.sh: a single-node Slurm on localhost.
ClusterName=tetriserve-local
MailProg=/bin/true
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/slurmd
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=pmix
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmdParameters=config_overrides
NodeName=localhost NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=$CPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start() {
    [ "$(id -u)" -eq 0 ] || die "start: needs root (the daemons run as SlurmUser=root)"
    for b in munged slurmctld slurmd munge sinfo scontrol; do
        command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] ||
            die "start: $b not found (install the Debian packages slurm-wlm munge)"
    done
    if alive "$(pid_of "$DIR/slurmctld.pid")" || alive "$(pid_of "$DIR/slurmd.pid")"; then
        die "start: already running from $DIR (stop it first)"
    fi
    write_conf
    rm -f "$DIR/munged.started"
    if ! munge_ok; then
        install -d -o munge -g munge -m 0755 /run/munge
        [ -s /etc/munge/munge.key ] || die "start: /etc/munge/munge.key is missing (reinstall munge)"
        runuser -u munge -- /usr/sbin/munged
        local n=50
        until munge_ok || [ $n -eq 0 ]; do sleep 0.1; n=$((n - 1)); done
        munge_ok || die "start: munged does not answer (munge -n | unmunge)"
        cp /run/munge/munged.pid "$DIR/munged.started"
    fi
    /usr/sbin/slurmctld || die "start: slurmctld failed (see $DIR/slurmctld.log)"
    /usr/sbin/slurmd || die "start: slurmd failed (see $DIR/slurmd.log)"
    local n=$((TIMEOUT_S * 10)) state=
    while [ $n -gt 0 ]; do
        state=$(sinfo -h -n localhost -o %T 2>/dev/null || true)
        [ "$state" = idle ] && break
        sleep 0.1
        n=$((n - 1))
    done
    [ "$state" = idle ] || die "start: node not idle after ${TIMEOUT_S} s (state '${state}'; see $DIR/*.log)"
    echo "local-slurm: up (node localhost idle, $CPUS CPUs); clients: export SLURM_CONF=$SLURM_CONF"
}

stop() {
    local ctld slurmd munged rc=0
    ctld=$(pid_of "$DIR/slurmctld.pid")
    slurmd=$(pid_of "$DIR/slurmd.pid")
    munged=$(pid_of "$DIR/munged.started")
    # Ask nicely first: slurmctld stops itself and the slurmd.
    if alive "$ctld"; then scontrol shutdown >/dev/null 2>&1 || true; fi
    for pid in $ctld $slurmd; do
        wait_gone "$pid" 10 && continue
        kill -TERM "$pid" 2>/dev/null || true
        wait_gone "$pid" 5 && continue
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 2 || { echo "local-slurm: stop: PID $pid survives SIGKILL" >&2; rc=1; }
    done
    if alive "$munged"; then
        kill -TERM "$munged" 2>/dev/null || true
        wait_gone "$munged" 5 || { kill -KILL "$munged" 2>/dev/null || true; }
    fi
    rm -f "$DIR/munged.started" "$DIR/slurmctld.pid" "$DIR/slurmd.pid"
    [ $rc -eq 0 ] && echo "local-slurm: stopped"
    return $rc
}

status() {
    local any=0
    for d in slurmctld slurmd; do
        local p
        p=$(pid_of "$DIR/$d.pid")
        if alive "$p"; then echo "$d: running (PID $p)"; any=1; else echo "$d: not running"; fi
    done
    [ $any -eq 1 ] && sinfo 2>/dev/null || true
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
env) echo "export SLURM_CONF=$SLURM_CONF" ;;
*) echo "usage: $0 start|stop|status|env   (state in TS_SLURM_DIR=$DIR)" >&2; exit 2 ;;
esac
