#!/bin/bash
# A real single-node SLURM on this machine (Debian's slurmctld, slurmd, slurm-client, munge): one node
# with all its CPUs, partition `debug`, no accounting database, daemons as root. Idempotent: a running
# cluster is left as it is (a drained node is resumed). Says in one line why when it cannot.
#   sudo bash slurm/local/up.sh      then   sinfo; make test     ·   bash slurm/local/down.sh stops it
set -uo pipefail
STATE=/run/trajfusion-slurm
CONF=/etc/slurm/slurm.conf
MARK="# written by trajfusion slurm/local/up.sh"
fail() { echo "slurm/local/up.sh: $*" >&2; exit 1; }
running() { ps -C "$1" -o stat= 2>/dev/null | grep -qv '^Z'; }   # a zombie (dead, not yet reaped) is not running

[ "$(id -u)" = 0 ] || fail "needs root (installs packages, starts daemons as root); run it with sudo"
# A working cluster that this script did not configure (the machine's own): nothing to do.
if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF" && scontrol ping 2>/dev/null | grep -q UP; then exit 0; fi

missing=()
for pair in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || fail "no apt-get here to install ${missing[*]}"
  log=$(mktemp /tmp/slurm-up-apt.XXXXXX.log)
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1 \
    || fail "cannot install ${missing[*]} (no package registry reachable?); apt log: $log"
fi

mkdir -p "$STATE" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /etc/slurm
if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
  fail "$CONF exists and was not written by this script; not touching a real cluster's config"
fi
host=$(hostname -s)
mem_mb=$(( $(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
cat >"$CONF.tmp" <<CONFEOF
$MARK
ClusterName=trajfusion-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
PropagatePrioProcess=1   # jobs keep the nice value of the shell that submitted them (nice -n 10 make test)
ReturnToService=2
# a requeued job starts again only after the credential lifetime (default 120 s): the shortest Slurm takes, for the requeue tests
AuthInfo=cred_expire=5
MinJobAge=3600
KillWait=30
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$host CPUs=$(nproc) RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONFEOF
if cmp -s "$CONF.tmp" "$CONF"; then rm "$CONF.tmp"; else
  mv "$CONF.tmp" "$CONF"
  if running slurmctld; then   # some settings (AuthInfo) are read at start only: restart it (jobs keep running)
    kill "$(cat "$STATE/slurmctld.pid" 2>/dev/null)" 2>/dev/null
    for _ in $(seq 20); do running slurmctld || break; sleep 0.5; done
    /usr/sbin/slurmctld || fail "slurmctld did not restart with the new $CONF"
    scontrol reconfigure >/dev/null 2>&1
  fi
fi

# munge: the key the packages generated (or a fresh one), the daemon as its own user
if ! running munged; then
  [ -s /etc/munge/munge.key ] || { mungekey --create 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=128 count=1 status=none; }
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge && chown munge:munge /run/munge
  runuser -u munge -- /usr/sbin/munged || fail "munged did not start"
  echo munged >>"$STATE/started"
fi
if ! running slurmctld; then
  /usr/sbin/slurmctld || fail "slurmctld did not start; see /var/log/slurm/slurmctld.log"
  echo slurmctld >>"$STATE/started"
fi
if ! running slurmd; then
  /usr/sbin/slurmd || fail "slurmd did not start; see /var/log/slurm/slurmd.log"
  echo slurmd >>"$STATE/started"
fi
for _ in $(seq 30); do
  if sinfo -h -p debug -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then exit 0; fi
  sinfo -h -p debug -o %T 2>/dev/null | grep -qE 'drain|down' && scontrol update nodename="$host" state=resume 2>/dev/null
  sleep 1
done
fail "the node did not come up within 30 s; see /var/log/slurm/slurmd.log and slurmctld.log"
