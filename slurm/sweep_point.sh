#!/bin/bash
# One W&B sweep point, as the sweep's command runs it inside slurm/sweep_agent.sbatch: torchrun with one rank
# per GPU of the job (RANKS_PER_NODE for CPU ranks), the stop file the job's signal trap '[ -n "$STOP" ] && touch "$STOP"' TERM USR1   # the ranks save at their next step
status=0
while true; do wait "$pid"; status=$?; kill -0 "$pid" 2>/dev/null || break; done   # a trap interrupts wait
if [ "$status" = 0 ] && [ -n "$STOP" ] && [ -e "$STOP" ]; then exit 75; fi
exit "$status"
