// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {InvariantTest} from "./lib/Forge.sol";
import {ProtocolHandler} from "./handlers/ProtocolHandler.sol";

/// @notice Stateful invariant fuzzing of the whole protocol: forge calls random handler actions
///         (ProtocolHandler) with random arguments and checks every invariant below after every
///         call. Profiles in foundry.toml set the depth (CI: >= 20,000 calls; `make fuzz`:
///         >= 1,000,000).
contract ProtocolInvariants is InvariantTest {
    ProtocolHandler internal handler;

    function setUp() public {
        handler = new ProtocolHandler();
        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](32);
        selectors[0] = handler.postJob.selector;
        selectors[1] = handler.joinStage.selector;
        selectors[2] = handler.cheaterCommit.selector;
        selectors[3] = handler.sealRound.selector;
        selectors[4] = handler.finalizeRound.selector;
        selectors[5] = handler.cancelJob.selector;
        selectors[6] = handler.challengeLeaf.selector;
        selectors[7] = handler.challengeIndex.selector;
        selectors[8] = handler.selfChallenge.selector;
        selectors[9] = handler.cheaterRespond.selector;
        selectors[10] = handler.slashUnanswered.selector;
        selectors[11] = handler.lazyVote.selector;
        selectors[12] = handler.resolve.selector;
        selectors[13] = handler.registerThrowaway.selector;
        selectors[14] = handler.deregister.selector;
        selectors[15] = handler.stakeMore.selector;
        selectors[16] = handler.requestUnstake.selector;
        selectors[17] = handler.withdrawStake.selector;
        selectors[18] = handler.withdrawCredit.selector;
        selectors[19] = handler.toggleBurner.selector;
        selectors[20] = handler.claimShares.selector;
        selectors[21] = handler.depositRevenue.selector;
        selectors[22] = handler.transferShares.selector;
        selectors[23] = handler.claimRevenue.selector;
        selectors[24] = handler.warp.selector;
        selectors[25] = handler.checkLiveness.selector;
        selectors[26] = handler.claimRewards.selector;
        selectors[27] = handler.leaveStage.selector;
        selectors[28] = handler.proveFault.selector;
        selectors[29] = handler.releaseValidatorStake.selector;
        selectors[30] = handler.burnShares.selector;
        selectors[31] = handler.keeper.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    /// @notice Every property, checked after every call: the handler checks them at the end of
    ///         each action and records the first violations (see ProtocolHandler, sections
    ///         "invariants" and "actions with ghost checks"):
    ///         - StakeManager, JobTerms, RewardVault, AuditCourt and ModelShares each hold
    ///           exactly what they owe (stake + unbonding; escrow; credited rewards; open bonds +
    ///           credits; unclaimed revenue) and JobMarket holds nothing;
    ///         - an honest provider (answers every dispute with its true leaf) and an honest
    ///           validator never lose stake, every dispute against an honest provider can be
    ///           answered, and every finalized round pays each honest stage its reward and shares;
    ///           a job ends with all honest work paid;
    ///         - a commitment is slashed at most once and at most its job's allocation, and a
    ///           provider loses at most its allocation in a job;
    ///         - committees hold no party and no validator registered after the round's seal;
    ///         - every job reaches a terminal state within a bounded number of permissionless pokes;
    ///         - no holder gets more than its exact pro-rata revenue, and the shortfall is at most
    ///           a wei per share event.
    function invariant_protocol() public view {
        if (handler.violationCount() != 0) revert(handler.violations(0));
    }

    /// @notice After each run, what it reached, appended as one CSV line to the file named by
    ///         TESSERA_FUZZ_STATS (scripts/fuzz.py sums them): a campaign that stopped exercising
    ///         disputes, payments or terminal states shows it.
    function afterInvariant() public {
        string memory path = VM.envOr("TESSERA_FUZZ_STATS", string(""));
        if (bytes(path).length == 0) return;
        uint256[11] memory v = [
            handler.jobsPosted(),
            handler.roundsFinalized(),
            handler.jobsCompleted(),
            handler.jobsCancelled(),
            handler.disputesOpened(),
            handler.providersSlashed(),
            handler.challengersSlashed(),
            handler.faultsProven(),
            handler.livenessChecks(),
            handler.corruptCaptures(),
            handler.throwawaysRegistered()
        ];
        string memory line = VM.toString(v[0]);
        for (uint256 i = 1; i < v.length; ++i) line = string.concat(line, ",", VM.toString(v[i]));
        VM.writeLine(path, line);
    }
}
