// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ProtocolHandler} from "./handlers/ProtocolHandler.sol";

/// @notice Call sequences the deep campaign shrank, replayed as plain tests so they stay fixed.
contract FuzzRegressionsTest {
    /// @notice Deep campaign, 331,000 calls in (harness false positive, not a contract bug): the
    ///         cheater missed a commit (liveness penalty, allocation released, stage vacated),
    ///         re-joined with a fresh allocation, committed a step discontinuity and a validator
    ///         proved it (whole allocation). The ghost capped the provider's loss per job rather
    ///         than per allocation and flagged 110% of minStake; the cap is per allocation now.
    function test_rejoin_after_liveness_penalty_then_proven_fault() public {
        ProtocolHandler h = new ProtocolHandler();
        h.postJob(1329298893629903778, 15);
        h.joinStage(
            1477673405529846133018144169373225378195675583994270075432817694,
            70479806973163823128031117854515623630500460464397147210611835,
            1988093296332685013878370933382893949764135
        );
        h.warp(579432633143087766829273644059659332629061);
        h.keeper(56);
        h.warp(43200);
        h.joinStage(3327641368, 18472, 1000000);
        h.keeper(16628552699281161265057657449988228230963803921745362632764354605082);
        h.cheaterCommit(45232, 2, 6903199847285755793409164967668146270460189136069769693144476232785551179);
        h.proveFault(96, 4096, 17256, 28672, 6272, 20480);
        require(h.faultsProven() == 1, "the fault was not proven");
        require(h.violationCount() == 0, h.violationCount() == 0 ? "" : h.violations(0));
    }
}
