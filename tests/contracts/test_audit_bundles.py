"""JobMarket.postAuditBundle: only the committer of a sealed round, event only.

Branches: round not sealed -> RoundNotSealed; caller did not commit the stage -> NotCommitter;
empty CID -> EmptyCommitment; otherwise AuditBundlePosted with the CID.
"""

import brownie
from contract_helpers import commit_all, fill, post_job


def test_post_audit_bundle(funded, providers, job_owner):
    market = funded.market
    job = post_job(funded, job_owner)
    fill(funded, job, providers[:2])
    with brownie.reverts():  # round 0 not sealed yet
        market.postAuditBundle(job, 0, 0, "b", {"from": providers[0]})
    commit_all(funded, job, 0, providers[:2])
    with brownie.reverts():  # not the committer of stage 1
        market.postAuditBundle(job, 0, 1, "b", {"from": providers[0]})
    with brownie.reverts():
        market.postAuditBundle(job, 0, 0, "", {"from": providers[0]})
    tx = market.postAuditBundle(job, 0, 0, "bafy-bundle", {"from": providers[0]})
    ev = tx.events["AuditBundlePosted"]
    assert (ev["jobId"], ev["round"], ev["stage"]) == (job, 0, 0)
    assert ev["provider"] == providers[0] and ev["bundleCID"] == "bafy-bundle"
