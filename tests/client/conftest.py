"""The client tier's fixtures: moto's in-process AWS with fake credentials (``aws_fixtures``), and a
guard that keeps the real SageMaker SDK on this machine."""

import socket

import pytest

from aws_fixtures import aws, aws_env, current_instance_types  # noqa: F401 (fixtures, used by name)


@pytest.fixture
def loopback_only(monkeypatch):
    """Fail any connection that is not to 127.0.0.1 (moto itself needs no sockets): the SDK's
    telemetry, or a client not pointed at the local endpoint, would otherwise leave the machine."""
    real_connect = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"test tried to reach {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
