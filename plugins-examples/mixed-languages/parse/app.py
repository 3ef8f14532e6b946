"""Python stage of the mixed-language job: parses `user,amount` text lines into JSON
`{"user", "amount"}`; lines that do not parse go to the side output `bad`."""

import rivulet_sdk as rv


class Parse(rv.Operator):
    def process(self, ctx, record):
        line = record.value_str().strip()
        parts = line.split(",")
        try:
            user, amount = parts[0].strip(), float(parts[1])
            if not user or len(parts) != 2:
                raise ValueError(line)
        except (ValueError, IndexError):
            ctx.emit_json_to("bad", {"line": line}, record.timestamp)
            return
        ctx.emit_json({"user": user, "amount": amount}, record.timestamp)


Operator = rv.export(Parse)
