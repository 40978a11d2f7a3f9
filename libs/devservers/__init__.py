"""Launchers for the real servers that tests and `sluice up` run on loopback (no pytest here).

- :mod:`.procs` — shared start / wait-until-ready / stop plumbing (:class:`~.procs.Server`).
- :mod:`.ports` — ``free_port()``, ``wait_for_tcp()``, ``http_status()``.
- :mod:`.nats` — ``NatsServer`` (JetStream; restartable on the same store and port).
- :mod:`.registry` — ``DockerRegistry`` and a small OCI client (``push_image``, ``list_tags``, …).
- :mod:`.sshd` — ``GitSshServer`` (git over ssh, throw-away keys, host keys always checked).
- :mod:`.git` — git CLI helpers (``init_bare``, ``seed_repo``, ``commit_files``, ``head``, …).
- :mod:`.s3` — ``MotoS3Server``.
"""
