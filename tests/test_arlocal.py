"""The arlocal launcher starts a real arlocal on loopback only."""

import subprocess


def test_arlocal_is_on_loopback_only(arlocal):
    info = arlocal.http.get("/info").json()
    assert info["height"] >= 0
    out = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout
    lines = [line for line in out.splitlines() if f":{arlocal.port} " in line]
    assert lines and all("127.0.0.1:" in line for line in lines)


def test_mine_raises_height(arlocal):
    before = arlocal.height()
    arlocal.mine()
    assert arlocal.height() == before + 1
