"""Running stacks: the ``RunningStack`` protocol and its three kinds (the test stack the engine starts, the attached
compose stack, a stack kept by ``up``), the compose stack's lifecycle, the shared session stack (``--reuse``,
pytest-xdist), runs' private state, and the Docker connection."""
