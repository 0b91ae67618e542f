// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {TesseraToken} from "../../../contracts/TesseraToken.sol";
import {StakeManager} from "../../../contracts/StakeManager.sol";
import {ModelShares} from "../../../contracts/ModelShares.sol";
import {JobMarket} from "../../../contracts/JobMarket.sol";
import {AuditCourt} from "../../../contracts/AuditCourt.sol";
import {IAuditCourt} from "../../../contracts/interfaces/IAuditCourt.sol";

/// @notice The whole protocol deployed and wired as agents/chain/deploy.py does it, with the
///         deployer (the contract that inherits this) as admin and token owner.
abstract contract TesseraSystem {
    uint64 internal constant DAY = 1 days;
    uint64 internal constant UNBONDING = 7 days;
    uint16 internal constant LIVENESS_BPS = 1_000;
    uint256 internal constant BOND = 100e18;
    uint64 internal constant RESPONSE_WINDOW = 1 days;
    uint64 internal constant COMMIT_VOTE_WINDOW = 1 days;
    uint64 internal constant REVEAL_WINDOW = 1 days;
    uint16 internal constant PROVIDER_SLASH_BPS = 5_000;
    uint16 internal constant WINNER_REWARD_BPS = 5_000;
    uint256 internal constant NON_REVEAL_PENALTY = 10e18;
    uint256 internal constant MIN_VALIDATOR_STAKE = 1_000e18;
    uint8 internal constant COMMITTEE_SIZE = 3;

    TesseraToken internal token;
    StakeManager internal stakes;
    ModelShares internal shares;
    JobMarket internal market;
    AuditCourt internal court;
    address internal treasury;

    function _deploySystem(address treasury_) internal {
        treasury = treasury_;
        token = new TesseraToken(address(this));
        stakes = new StakeManager(token, UNBONDING, address(this));
        shares = new ModelShares(token, address(this), "ipfs://tessera/models/{id}.json");
        market = new JobMarket(token, stakes, shares, LIVENESS_BPS, address(this));
        court = new AuditCourt(
            token,
            stakes,
            market,
            IAuditCourt.CourtParams({
                challengeBond: BOND,
                responseWindow: RESPONSE_WINDOW,
                commitVoteWindow: COMMIT_VOTE_WINDOW,
                revealWindow: REVEAL_WINDOW,
                providerSlashBps: PROVIDER_SLASH_BPS,
                winnerRewardBps: WINNER_REWARD_BPS,
                nonRevealPenalty: NON_REVEAL_PENALTY,
                minValidatorStake: MIN_VALIDATOR_STAKE,
                committeeSize: COMMITTEE_SIZE
            }),
            treasury_
        );
        market.setCourt(court);
        stakes.grantRole(stakes.PROTOCOL_ROLE(), address(market));
        stakes.grantRole(stakes.PROTOCOL_ROLE(), address(court));
        shares.grantRole(shares.MINTER_ROLE(), address(market));
    }
}
