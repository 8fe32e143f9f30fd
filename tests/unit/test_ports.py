from __future__ import annotations

import os
import socket

from commerce_devstack.ports import describe_listener, is_listening, listener_pids


def test_listener_is_found_and_named() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert is_listening("127.0.0.1", port)
        assert os.getpid() in listener_pids(port)
        assert f"pid {os.getpid()}" in describe_listener(port)
    assert not is_listening("127.0.0.1", port)
    assert listener_pids(port) == []
