#!/bin/bash
# Stop the daemons slurm/local/up.sh started (and only those); job state stays in /var/spool/slurmctld.
set -uo pipefail
STATE=/run/trajfusion-slurm
[ -f "$STATE/started" ] || { echo "slurm/local/down.sh: nothing started by up.sh is running"; exit 0; }
for daemon in slurmd slurmctld munged; do
  grep -qx "$daemon" "$STATE/started" || continue
  case $daemon in
    munged) pidfile=/run/munge/munged.pid ;;
    *) pidfile=$STATE/$daemon.pid ;;
  esac
  if [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null; then
    for _ in $(seq 20); do kill -0 "$(cat "$pidfile" 2>/dev/null)" 2>/dev/null || break; sleep 0.5; done
  fi
done
rm -f "$STATE/started"
