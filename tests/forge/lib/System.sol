// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {TesseraToken} from "../../../contracts/TesseraToken.sol";
import {StakeManager} from "../../../contracts/StakeManager.sol";
import {ModelShares} from "../../../contracts/ModelShares.sol";
import {JobMarket} from "../../../contracts/JobMarket.sol";
import {AuditCourt} from "../../../contracts/AuditCourt.sol";
import {ValidatorRegistry} from "../../../contracts/ValidatorRegistry.sol";
import {PrevrandaoRandomness} from "../../../contracts/PrevrandaoRandomness.sol";
import {IAuditCourt} from "../../../contracts/interfaces/IAuditCourt.sol";
import {IJobTerms} from "../../../contracts/interfaces/IJobTerms.sol";
import {IRewardVault} from "../../../contracts/interfaces/IRewardVault.sol";

/// @notice The whole protocol deployed and wired as agents/chain/deploy.py does it (same
///         parameters as its DEFAULT_PARAMS), admin roles renounced after wiring. The deployer
///         (the contract inheriting this) keeps only the token's dev-chain faucet, to fund actors.
abstract contract TesseraSystem {
    uint64 internal constant DAY = 1 days;
    uint64 internal constant UNBONDING = 7 days;
    uint64 internal constant RANDOMNESS_DELAY = 8;
    uint16 internal constant LIVENESS_BPS = 1_000;
    uint64 internal constant MIN_CHALLENGE_WINDOW = 3_600;
    uint256 internal constant MIN_VALIDATOR_STAKE = 1_000e18;
    uint64 internal constant VALIDATOR_EXIT_DELAY = 37 days;
    uint256 internal constant BOND = 100e18;
    uint64 internal constant RESPONSE_WINDOW = 1 days;
    uint64 internal constant COMMIT_VOTE_WINDOW = 1 days;
    uint64 internal constant REVEAL_WINDOW = 1 days;
    uint16 internal constant PROVIDER_SLASH_BPS = 5_000;
    uint16 internal constant WINNER_REWARD_BPS = 5_000;
    uint8 internal constant COMMITTEE_SIZE = 3;

    TesseraToken internal token;
    StakeManager internal stakes;
    ModelShares internal shares;
    PrevrandaoRandomness internal randomness;
    JobMarket internal market;
    IJobTerms internal terms;
    IRewardVault internal vault;
    ValidatorRegistry internal registry;
    AuditCourt internal court;
    address internal treasury;

    function _deploySystem(address treasury_) internal {
        treasury = treasury_;
        token = new TesseraToken(address(this), 0);
        stakes = new StakeManager(token, UNBONDING, address(this));
        shares = new ModelShares(token, address(this), "ipfs://tessera/models/{id}.json");
        randomness = new PrevrandaoRandomness(RANDOMNESS_DELAY);
        market = new JobMarket(
            token, stakes, shares, randomness, LIVENESS_BPS, MIN_CHALLENGE_WINDOW, address(this)
        );
        terms = market.terms();
        vault = market.vault();
        registry = new ValidatorRegistry(stakes, MIN_VALIDATOR_STAKE, VALIDATOR_EXIT_DELAY, address(this));
        court = new AuditCourt(
            token,
            stakes,
            market,
            registry,
            IAuditCourt.CourtParams({
                challengeBond: BOND,
                responseWindow: RESPONSE_WINDOW,
                commitVoteWindow: COMMIT_VOTE_WINDOW,
                revealWindow: REVEAL_WINDOW,
                providerSlashBps: PROVIDER_SLASH_BPS,
                winnerRewardBps: WINNER_REWARD_BPS,
                committeeSize: COMMITTEE_SIZE
            }),
            treasury_
        );
        market.setCourt(court);
        registry.setCourt(address(court));
        stakes.grantRole(stakes.PROTOCOL_ROLE(), address(market));
        stakes.grantRole(stakes.PROTOCOL_ROLE(), address(registry));
        shares.grantRole(shares.MINTER_ROLE(), address(vault));
        // M-7: nobody keeps an admin key after wiring.
        bytes32 admin = 0x00;
        stakes.renounceRole(admin, address(this));
        shares.renounceRole(admin, address(this));
        market.renounceRole(admin, address(this));
        registry.renounceRole(admin, address(this));
    }
}
