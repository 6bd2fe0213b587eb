"""A simulated agent's answers to the upgrade, rollback, restart and renew commands."""

from __future__ import annotations

from fleet.protocol import (
    CommandError,
    CommandFinished,
    CommandRequest,
    RenewCommand,
    RenewResult,
    RestartCommand,
    RestartResult,
    RollbackCommand,
    RollbackResult,
    UpgradeCommand,
    UpgradeResult,
)


class Answers:
    """A simulated agent's command handler that keeps what it got and accepts it,
    or refuses everything with :attr:`refuse`."""

    def __init__(self) -> None:
        self.commands: list[object] = []
        self.refuse: CommandError | None = None

    async def __call__(self, req: CommandRequest) -> CommandFinished:
        cmd = req.command
        self.commands.append(cmd)
        if self.refuse is not None:
            return CommandFinished(request_id=req.request_id, error=self.refuse)
        if isinstance(cmd, UpgradeCommand):
            result = UpgradeResult(version=cmd.version, driver="release")
        elif isinstance(cmd, RollbackCommand):
            result = RollbackResult(version="0.1.0", detail=cmd.reason)
        elif isinstance(cmd, RestartCommand):
            result = RestartResult(detail=cmd.reason)
        elif isinstance(cmd, RenewCommand):
            result = RenewResult(not_after=2e9, detail=cmd.reason)
        else:
            raise AssertionError(cmd)
        return CommandFinished(request_id=req.request_id, result=result)
