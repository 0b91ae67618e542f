"""The assembled `tessera` app: each noun's sub-app and the top-level verbs."""

from __future__ import annotations

from agents.cli import job, local, provider, shares, stake, validator
from agents.cli.apps import root_app
from agents.lineage.commands import data_app, lineage_app
from agents.storage.commands import store_app

app = root_app()
for _sub, _name in (
    (store_app, "store"),
    (data_app, "data"),
    (lineage_app, "lineage"),
    (stake.stake_app, "stake"),
    (job.job_app, "job"),
    (provider.provider_app, "provider"),
    (validator.validator_app, "validator"),
    (shares.shares_app, "shares"),
):
    app.add_typer(_sub, name=_name)
app.command("up")(local.up)
app.command("infer")(local.infer)
app.command("demo")(local.demo)
