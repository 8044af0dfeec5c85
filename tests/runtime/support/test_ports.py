"""free_port: a free loopback port below the kernel's ephemeral range, where no outgoing
connection can take it before its server binds."""
import socket

from runtime.support import ports


def test_a_free_port_is_below_the_ephemeral_range_and_bindable():
    start = ports.ephemeral_start()
    chosen = {ports.free_port() for _ in range(20)}
    assert all(ports.LOWEST <= port < start for port in chosen), (chosen, start)
    for port in chosen:
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))


def test_a_port_in_use_is_never_chosen(monkeypatch, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        busy = taken.getsockname()[1]
        # a range whose only room below it is the busy port and one more
        (tmp_path / "range").write_text(f"{busy + 2}\t60999\n")
        monkeypatch.setattr(ports, "RANGE_FILE", tmp_path / "range")
        monkeypatch.setattr(ports, "LOWEST", busy)
        monkeypatch.setattr(ports, "ATTEMPTS", 2)
        assert ports.free_port() == busy + 1


def test_without_room_below_the_range_any_free_port_is_given(monkeypatch, tmp_path):
    (tmp_path / "range").write_text("10050\t60999\n")
    monkeypatch.setattr(ports, "RANGE_FILE", tmp_path / "range")
    port = ports.free_port()
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
