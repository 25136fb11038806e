"""The connector ADIOS2 talks to on localhost:30000 (``camp connect``).

* :mod:`~campaignvcs.connector.protocol` — request parsing and the response strings;
* :mod:`~campaignvcs.connector.service` — the threaded local service, keys and tunnels;
* :mod:`~campaignvcs.connector.hosts` — hosts.yaml entries and how to reach their hosts;
* :mod:`~campaignvcs.connector.launch` — starting a host's ``adios2_remote_server`` over SSH;
* :mod:`~campaignvcs.connector.tunnel` — SSH connections (paramiko) and port forwarding;
* :mod:`~campaignvcs.connector.peers` — which local user a loopback client runs as.
"""
