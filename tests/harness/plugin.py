"""The real-server test harness, registered for every test directory by the root conftest.

Fixtures (all servers are started lazily, the first time a test asks, on free loopback ports):

- ``nats_server`` (session): :class:`libs.devservers.nats.NatsServer` with JetStream.
- ``nats_url`` (function): the server's URL, with every JetStream stream deleted after the test.
- ``git_server`` (session): :class:`tests.harness.git_fixtures.GitServer` — bare repos over
  ``file://`` and a real sshd (``.ssh``).
- ``registry`` / ``registry_auth`` (session): docker-registry, anonymous / htpasswd.
- ``kube_emulator`` (session): the Kubernetes API emulator in a background thread — ``.url``,
  ``.kubeconfig``, ``.emulator``; ``kube_cluster``: a real cluster when ``SLUICE_TEST_KUBECONFIG``
  is set, else the emulator.
- ``s3_server`` (session): from :mod:`tests.harness.s3`.

Hygiene (autouse, every test): a test that leaves a child process running or an asyncio task
pending fails; see :mod:`tests.harness.hygiene`.
"""

import importlib.util

pytest_plugins = [
    "tests.harness.hygiene",
    "tests.harness.nats_fixtures",
    "tests.harness.git_fixtures",
    "tests.harness.registry_fixtures",
    "tests.harness.kube_fixtures",
]
# Written by another engineer; picked up as soon as it exists.
if importlib.util.find_spec("tests.harness.s3") is not None:
    pytest_plugins.append("tests.harness.s3")
