"""The real server starts and answers: the base every other server test builds on."""


def test_root_names_system_and_channels(server):
    """GET / names the system, its version and the loaded channels."""
    body = server.client(None).get("/").json()
    assert body["name"] == "omnichannel"
    assert "http" in body["channels"]
