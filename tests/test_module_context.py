"""What a plugin's ModuleContext gives it, beyond the hooks' own tests."""

from __future__ import annotations

from falcon import testing
from structlog.testing import capture_logs

from omnichannel_core.module import ModuleContext, Route, hookimpl
from omnichannel_core.testing import run_app


class Chatty:
    @hookimpl
    def register_routes(self, context: ModuleContext) -> list[Route]:
        context.log.info("chatty_started", routes=0)
        return []


def test_a_plugins_log_lines_name_the_plugin(tmp_path):
    """Every line a plugin logs through ``context.log`` carries ``plugin``: its name."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        pass

    with capture_logs() as logs:
        run_app(tmp_path, {}, scenario, modules={"chatty": Chatty()})
    [line] = [entry for entry in logs if entry["event"] == "chatty_started"]
    assert line["plugin"] == "chatty"
    assert line["routes"] == 0
