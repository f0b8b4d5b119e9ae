"""``tracker up`` prints each demo order's tracking link once, as the simulator appends it to the links file:
a line still being written waits for its newline, and a file left by an earlier run is not printed."""

from __future__ import annotations

from tracker.up import LinkTail


def test_each_link_is_printed_once_and_only_when_its_line_is_complete(tmp_path):
    path = tmp_path / "links.txt"
    path.write_text("/track/old-run-token\n")  # an earlier run's file in the same directory
    tail = LinkTail(path, "http://127.0.0.1:8000")
    assert not path.exists()
    assert tail.new() == []  # no file yet
    with path.open("a") as file:
        file.write("/track/a.sig\n/track/b.s")  # the second line is still being written
    assert tail.new() == ["http://127.0.0.1:8000/track/a.sig"]
    with path.open("a") as file:
        file.write("ig\n\n/track/c.sig\n")
    assert tail.new() == ["http://127.0.0.1:8000/track/b.sig", "http://127.0.0.1:8000/track/c.sig"]
    assert tail.new() == []
