"""Real etcd clusters from this program's own output, one network namespace per member.

- `harness`: run the program (tests/program.py, real certificates), collect each member's
  user-data, DNS records, outputs and firewall rules (`artifacts_of`), and build a `Cluster`:
  namespaces on a private bridge, members installed from their user-data, a client and a
  monitoring namespace, client-side commands (etcdctl, curl, openssl) with the stack's exports;
- `member`: one member, started exactly as its systemd unit says (tests/realcluster/member.py);
- `netns`, `firewall`, `unitfile`, `readme`, `certs`: the pieces; `cleanup`: undo on every exit
  path; `tools`: the binaries, or `Unavailable` naming what is missing (tests skip with it).

Set REALCLUSTER_KEEP=1 to keep the work directories (logs, data) of the clusters for debugging;
a later run without it removes those of runs that are gone.
"""
