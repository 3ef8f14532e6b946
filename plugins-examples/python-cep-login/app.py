"""The cep-login example in Python, with ``rivulet_sdk.cep``: per user, three failed
logins in a row directly followed by a success less than 60 s after the first failure;
matching restarts after the success. Same contract as the Rust ``cep-login``."""

import rivulet_sdk as rv
from rivulet_sdk.cep import SKIP_PAST_LAST_EVENT, Cep, Pattern


class CepLogin(rv.Operator):
    def open(self, ctx, config):
        pattern = (
            Pattern.begin("fails").where(lambda e: e["type"] == "fail").times(3).consecutive()
            .next("success").where(lambda e: e["type"] == "success")
            .within(60_000)
            .skip(SKIP_PAST_LAST_EVENT)
        )
        self.attacks = Cep("attacks", pattern)

    def process(self, ctx, record):
        login = record.json()
        if not self.attacks.process(ctx, {"user": login["user"], "type": login["type"]}, record.timestamp):
            ctx.emit_to("late", record.value, record.timestamp, record.key)

    def on_timer(self, ctx, timestamp, domain):
        if domain != rv.EVENT_TIME:
            return
        found = self.attacks.on_timer(ctx, timestamp)
        for m in found.matches:
            fails, success = m.timestamps("fails"), m.timestamps("success")
            ctx.emit_json({"first_fail": fails[0], "success": success[0], "user": m.get("fails")[0]["user"]}, success[0])
        for m in found.timed_out:
            ctx.emit_json_to("timed-out", {"fails": m.timestamps("fails"), "user": m.get("fails")[0]["user"]}, m.last_timestamp())


Operator = rv.export(CepLogin)
