"""The real-server test harness, registered for every test directory by the root conftest.

Fixtures (all servers are started lazily, the first time a test asks, on free loopback ports):

- ``nats_server`` (session): :class:`libs.devservers.nats.NatsServer` with JetStream (``.url``,
  ``.restart()``, ``.kill()``, ``.start()``; a restart keeps the URL and the streams).
- ``nats_url`` (function): the server's URL, with no JetStream stream before the test and every
  stream deleted after it (the server is started again if a test left it down).
- ``git_server`` (session): :class:`tests.harness.git_fixtures.GitServer` — ``.root``,
  ``.new_repo(name) -> (path, file_url)``, and a real sshd as ``.ssh``
  (:class:`libs.devservers.sshd.GitSshServer`: ``.url_for(path)``, ``.git_env()``,
  ``.known_hosts``, ``.client_private_key``).
- ``registry`` (session): :class:`libs.devservers.registry.DockerRegistry` (``.url``, ``.host``);
  ``registry_auth`` (session): the same behind htpasswd, with ``.username`` and ``.password``.
- ``kube_emulator`` (session): the Kubernetes API emulator in a background thread — ``.url``,
  ``.kubeconfig``, ``.emulator``; ``kube_cluster``: a real cluster when ``SLUICE_TEST_KUBECONFIG``
  is set, else the emulator.
- ``s3_server`` (session): from :mod:`tests.harness.s3`.

Hygiene (autouse, every test): a test that leaves a child process running or an asyncio task
pending fails; see :mod:`tests.harness.hygiene`. Processes started by session/module/class
fixtures are not counted; a server such a fixture yields that a test may restart (new pid) is
recognised when it is a :class:`libs.devservers.procs.Server`, otherwise register it with
:func:`tests.harness.hygiene.register_server`.
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
