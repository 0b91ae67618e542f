// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {IJobMarket} from "../../../contracts/interfaces/IJobMarket.sol";
import {IAuditCourt} from "../../../contracts/interfaces/IAuditCourt.sol";
import {Vm} from "../lib/Forge.sol";
import {TesseraSystem} from "../lib/System.sol";
import {TraceTree} from "../lib/TraceTree.sol";
import {GasBurner} from "../lib/Actors.sol";

/// @notice Drives the whole protocol with random actors for forge's invariant fuzzer. Every
///         external action of the protocol has a handler function; the fuzzer picks them and
///         their arguments, the handler maps the arguments onto actors and existing objects.
///
///         Honest parties are always online: before and after every action the handler lets
///         them do their duty (honest providers commit their true trace, answer every dispute
///         with their true leaf; honest validators record seeds and vote the truth, commit and
///         reveal in time). Everyone else acts only when the fuzzer says so, with any arguments:
///         a cheating provider with a wrong leaf, its second account that challenges it and
///         stays silent, a provider whose ERC-1155 hook burns all gas, griefers challenging
///         honest leaves and indices past the trace, throw-away validators registering at any
///         time, a lazy validator that votes against the truth or not at all, owners cancelling
///         at any moment, share traders and revenue depositors.
///
///         What must hold is recorded as ghost state; a handler never reverts because of a
///         broken property (a revert would erase the record): it appends to `violations`, and
///         the invariant test fails on the first one with its text.
contract ProtocolHandler is TesseraSystem {
    Vm private constant VM = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    uint256 private constant MAX_JOBS = 8;
    uint256 private constant MAX_LIVE_JOBS = 3;
    uint256 private constant MAX_THROWAWAYS = 6;
    uint256 private constant MAX_ACTIVE_DISPUTES = 8;
    uint256 private constant FUNDS = 1_000_000e18;
    /// @dev Gas of one block: what any single protocol call can use on chain.
    uint256 private constant BLOCK_GAS = 30_000_000;
    string private constant CID = "bafkreifuzz";

    // ------------------------------------------------------------------ actors

    address[] private _honestProviders;
    GasBurner public burner;
    address public cheater;
    address public cheaterAlt;
    address[] private _honestValidators;
    address public lazyValidator;
    address[] private _throwaways;
    address[] private _owners;
    address[] private _griefers;
    address public depositor;
    /// @dev Every account that can hold stake, credit or shares (the sums of the invariants run
    ///      over it, so it must name everyone the protocol could owe).
    address[] private _everyone;
    /// @dev Accounts shares can be minted or transferred to.
    address[] private _holders;
    mapping(address => bool) private _isHonest;
    mapping(address => bool) private _isHonestValidator;
    mapping(address => uint256) private _netStaked;
    mapping(address => bool) private _staker;
    /// @dev Accounts the court may have credited: parties and committee members of every decided
    ///      dispute, and the treasury (the court's balance check sums their credits).
    address[] private _creditors;
    mapping(address => bool) private _isCreditor;
    mapping(address => uint64) private _registeredBlock;

    // ------------------------------------------------------------------ clock

    uint256 public nowTime;
    uint256 public nowBlock;

    // ------------------------------------------------------------------ jobs and ghosts

    uint256[] private _jobIds;
    uint256[] private _activeDisputes;
    mapping(uint256 => bool) private _silentDispute;
    mapping(uint256 => bool) private _unanswerable;
    mapping(uint256 => bool) private _salted;

    /// @dev How a commitment's trace was made: honest (mode 0) or one of the cheats below, with
    ///      the leaf or step it touches (`pos`) and the state its first step had to start from.
    struct Trace {
        address provider;
        uint8 mode;
        uint32 pos;
        bytes32 start;
        bytes32 finalState;
    }

    uint8 private constant HONEST = 0;
    uint8 private constant WRONG_OUTPUT = 1; // one leaf's output is wrong: only a replay shows it
    uint8 private constant DISCONTINUITY = 2; // step `at` does not start where step at-1 ended
    uint8 private constant WRONG_START = 3; // step 0 starts from the wrong state
    uint8 private constant WRONG_FINAL = 4; // the committed final state is not the trace's end
    uint8 private constant SPLIT_STEP = 5; // one micro-batch of step `at` ends in another state

    mapping(bytes32 key => Trace) private _traces;
    mapping(bytes32 key => bool) private _honestWork;
    mapping(bytes32 key => bool) private _paid;
    mapping(bytes32 key => uint256) public slashCount;
    mapping(bytes32 key => uint256) public slashedAmount;
    mapping(uint256 jobId => mapping(address => uint256)) public slashedInJob;
    mapping(uint256 jobId => bytes32[]) private _honestKeys;

    mapping(uint256 modelId => mapping(address => uint256)) private _entitledScaled;
    mapping(uint256 modelId => mapping(address => uint256)) private _claimedRevenue;
    mapping(uint256 modelId => uint256) private _revenueEvents;

    mapping(uint256 jobId => bool) private _ended;
    mapping(uint256 jobId => mapping(uint32 round => bool)) private _seedRecorded;
    /// @dev The terms each job was posted with (read here rather than from the market: a view
    ///      returning a string is costly and the terms never change).
    mapping(uint256 jobId => IJobMarket.JobParams) private _terms;
    /// @dev Models with shares or revenue (the revenue checks skip the others).
    mapping(uint256 modelId => bool) private _hasShares;

    string[] public violations;

    // ------------------------------------------------------------------ counters (printed)

    uint256 public jobsPosted;
    uint256 public roundsFinalized;
    uint256 public jobsCompleted;
    uint256 public jobsCancelled;
    uint256 public disputesOpened;
    uint256 public providersSlashed;
    uint256 public challengersSlashed;
    uint256 public livenessChecks;
    uint256 public faultsProven;
    uint256 public corruptCaptures;

    function throwawaysRegistered() external view returns (uint256) {
        return _throwaways.length;
    }

    constructor() {
        _deploySystem(VM.addr(0x7EA5));
        nowTime = 1_700_000_000;
        nowBlock = 1_000;
        VM.warp(nowTime);
        VM.roll(nowBlock);
        _everyone.push(treasury);
        _addCreditor(treasury);
        for (uint256 i = 0; i < 4; ++i) {
            address p = _actor(0x1000 + i, "honestProvider", 3_000e18);
            _honestProviders.push(p);
            _isHonest[p] = true;
            _holders.push(p);
        }
        burner = new GasBurner();
        _fund(address(burner));
        _stake(address(burner), 3_000e18);
        _isHonest[address(burner)] = true;
        _everyone.push(address(burner));
        _holders.push(address(burner));
        cheater = _actor(0x2000, "cheater", 3_000e18);
        _holders.push(cheater);
        cheaterAlt = _actor(0x2001, "cheaterAlt", 0);
        // Honest validators hold almost all validator stake: committees are drawn by stake, and
        // an honest majority of seats is the court's security assumption.
        for (uint256 i = 0; i < 5; ++i) {
            address v = _actor(0x3000 + i, "honestValidator", 20_000e18);
            _register(v, 20_000e18);
            _honestValidators.push(v);
            _isHonest[v] = true;
            _isHonestValidator[v] = true;
        }
        lazyValidator = _actor(0x3100, "lazyValidator", MIN_VALIDATOR_STAKE + 100e18);
        _register(lazyValidator, MIN_VALIDATOR_STAKE);
        for (uint256 i = 0; i < 2; ++i) {
            address o = _actor(0x4000 + i, "owner", 0);
            _owners.push(o);
            _holders.push(o);
        }
        for (uint256 i = 0; i < 1; ++i) {
            address g = _actor(0x5000 + i, "griefer", 0);
            _griefers.push(g);
            _holders.push(g);
        }
        depositor = _actor(0x6000, "depositor", 0);
    }

    // ================================================================== modifiers

    /// @dev Every action runs at the handler's clock (forge may reset the block environment
    ///      between calls) and ends with the honest parties' duties. Nothing else changes state
    ///      between two actions, so duties after each action are duties at every moment.
    modifier step() {
        VM.warp(nowTime);
        VM.roll(nowBlock);
        _;
        _duties();
        _checkInvariants();
    }

    // ================================================================== job lifecycle

    /// @notice An owner posts a job with random (mostly sensible, sometimes extreme) terms.
    function postJob(uint256 ownerSeed, uint256 seed) external step {
        if (_jobIds.length >= MAX_JOBS || _liveJobs() >= MAX_LIVE_JOBS) return;
        address owner = _owners[ownerSeed % _owners.length];
        (IJobMarket.JobParams memory p, bool outOfBounds) = _randomParams(seed);
        bytes32[] memory initial = new bytes32[](p.numStages);
        uint256 next = market.nextJobId();
        for (uint256 s = 0; s < initial.length; ++s) initial[s] = keccak256(abi.encode("initial", next, s));
        VM.prank(owner);
        uint256 jobId = market.postJob(p, initial);
        if (outOfBounds) _violation(string.concat("postJob accepted out-of-bounds terms (job ", _u(jobId), ")"));
        _jobIds.push(jobId);
        _terms[jobId] = p;
        ++jobsPosted;
    }

    /// @notice A provider (honest, cheating or gas-burning) joins a vacant stage.
    function joinStage(uint256 actorSeed, uint256 jobSeed, uint256 stageSeed) external step {
        (bool ok, uint256 jobId) = _pickJob(jobSeed);
        if (!ok) return;
        address who = _provider(actorSeed);
        uint32 numStages = _params(jobId).numStages;
        uint32 stage = uint32(stageSeed % numStages);
        // Mostly a provider new to the job takes a vacant stage (so jobs fill and run); one call
        // in four keeps the fuzzer's raw choice (taken stages, a second stage, a re-join).
        if (stageSeed % 4 != 0) {
            for (uint256 i = 0; i < _honestProviders.length + 2; ++i) {
                address cand = _provider(actorSeed + i);
                if (market.stageOf(jobId, cand) < 0) {
                    who = cand;
                    break;
                }
            }
            for (uint32 i = 0; i < numStages; ++i) {
                uint32 cand = (stage + i) % numStages;
                if (market.stageProvider(jobId, cand) == address(0)) {
                    stage = cand;
                    break;
                }
            }
        }
        _must(who, address(market), abi.encodeCall(market.joinStage, (jobId, stage)));
        // A join makes a fresh allocation (a vacated provider's was released, or it could not
        // re-join): the per-job cap applies to each allocation.
        slashedInJob[jobId][who] = 0;
    }

    /// @notice The cheater commits its stage with a cheat: a wrong leaf that only a replay shows,
    ///         or a structural fault (discontinuity, wrong start or final state, a split step).
    ///         Honest stages commit on their own, in `_duties`.
    function cheaterCommit(uint256 jobSeed, uint256 modeSeed, uint256 atSeed) external step {
        (bool ok, uint256 jobId) = _pickJob(jobSeed);
        if (!ok) return;
        int256 held = market.stageOf(jobId, cheater);
        if (held < 0) return;
        uint32 stage = uint32(uint256(held));
        (, , uint32 round,,) = market.jobState(jobId);
        IJobMarket.JobParams storage p = _params(jobId);
        uint8 mode = uint8(1 + modeSeed % 5);
        uint32 pos = uint32(atSeed % _leafCount(jobId));
        if (mode == DISCONTINUITY) {
            if (p.stepsPerRound < 2) mode = WRONG_OUTPUT;
            else pos = uint32(1 + atSeed % (p.stepsPerRound - 1));
        }
        if (mode == SPLIT_STEP) {
            if (p.microBatches < 2) mode = WRONG_OUTPUT;
            else pos = uint32(atSeed % p.stepsPerRound);
        }
        _commit(cheater, jobId, round, stage, mode, pos);
    }

    /// @notice Anyone seals the current round (after its commit deadline).
    function sealRound(uint256 jobSeed, uint256 callerSeed) external step {
        (bool ok, uint256 jobId) = _pickJob(jobSeed);
        if (!ok) return;
        (, , uint32 round,,) = market.jobState(jobId);
        address caller = _anyone(callerSeed);
        uint32 numStages = _params(jobId).numStages;
        uint256[] memory before = _stakeSnapshot(jobId, numStages);
        address[] memory stageHolders = _stageHolders(jobId, numStages);
        _must(caller, address(market), abi.encodeCall(market.sealRound, (jobId, round)));
        _recordJobSlashes(jobId, stageHolders, before);
    }

    /// @notice Anyone finalizes the current round; every honest committed stage must be paid its
    ///         reward and shares.
    function finalizeRound(uint256 jobId_, uint256 callerSeed) external step {
        (bool ok, uint256 jobId) = _pickJob(jobId_);
        if (!ok) return;
        _finalize(jobId, _anyone(callerSeed), true);
    }

    /// @notice An owner (or anyone) tries to cancel, possibly after work was done.
    function cancelJob(uint256 jobSeed, uint256 callerSeed) external step {
        (bool ok, uint256 jobId) = _pickJob(jobSeed);
        if (!ok) return;
        (IJobMarket.JobStatus status, address owner,,,) = market.jobState(jobId);
        // Owners mostly try once work has started (a cancel of an Open job is allowed and ends
        // the exploration of that job, so it is rarer); others try at any time.
        if (status == IJobMarket.JobStatus.Open && callerSeed % 8 != 0) return;
        address caller = callerSeed % 2 == 0 ? _anyone(callerSeed) : owner;
        _cancel(jobId, caller, true);
    }

    // ================================================================== disputes

    /// @notice Challenges a committed leaf with its Merkle proof. Honest validators only
    ///         challenge wrong leaves; griefers, owners and the cheater's account challenge any.
    function challengeLeaf(uint256 actorSeed, uint256 jobSeed, uint256 stageSeed, uint256 leafSeed)
        external
        step
    {
        (bool ok, uint256 jobId) = _pickJob(jobSeed);
        if (!ok || _activeDisputes.length >= MAX_ACTIVE_DISPUTES) return;
        (, , uint32 round,,) = market.jobState(jobId);
        uint32 stage = uint32(stageSeed % _params(jobId).numStages);
        int256 cheaterStage = market.stageOf(jobId, cheater);
        // Auditors sample; half the time the sample lands on the cheater's stage.
        if (cheaterStage >= 0 && stageSeed % 2 == 0) stage = uint32(uint256(cheaterStage));
        bytes32 key = _key(jobId, round, stage);
        if (_traces[key].provider == address(0)) return;
        bytes32[] memory leaves = _hashes(jobId, round, stage, _traces[key], false);
        address challenger = _challenger(actorSeed);
        uint256 index = leafSeed % leaves.length;
        if (_isHonestValidator[challenger]) {
            // An auditor replays and challenges only a leaf it found wrong.
            bool found = false;
            for (uint256 i = 0; i < leaves.length && !found; ++i) {
                uint256 j = (index + i) % leaves.length;
                if (leaves[j] != _truth(jobId, round, stage, j)) {
                    index = j;
                    found = true;
                }
            }
            if (!found) return;
        }
        bytes memory data = abi.encodeCall(
            court.challenge, (jobId, round, stage, index, leaves[index], TraceTree.proof(leaves, index))
        );
        _openDispute(challenger, data, false, true);
    }

    /// @notice Challenges a leaf by index only, any index (past the end of the trace included).
    function challengeIndex(uint256 actorSeed, uint256 jobSeed, uint256 stageSeed, uint256 index)
        external
        step
    {
        (bool ok, uint256 jobId) = _pickJob(jobSeed);
        if (!ok || _activeDisputes.length >= MAX_ACTIVE_DISPUTES) return;
        (, , uint32 round,,) = market.jobState(jobId);
        uint32 stage = uint32(stageSeed % _params(jobId).numStages);
        uint256 n = _leafCount(jobId);
        if (index % 3 != 0) index = index % (n + 3);
        _openDispute(
            _challenger(actorSeed), abi.encodeCall(court.challengeIndex, (jobId, round, stage, index)), false, true
        );
    }

    /// @notice The cheater's second account challenges the cheater's wrong leaf first and the
    ///         cheater stays silent (finding M-5).
    function selfChallenge(uint256 jobSeed) external step {
        (bool ok, uint256 jobId) = _pickJob(jobSeed);
        if (!ok || _activeDisputes.length >= MAX_ACTIVE_DISPUTES) return;
        int256 held = market.stageOf(jobId, cheater);
        if (held < 0) return;
        uint32 stage = uint32(uint256(held));
        (, , uint32 round,,) = market.jobState(jobId);
        bytes32 key = _key(jobId, round, stage);
        if (_traces[key].provider != cheater) return;
        bytes32[] memory leaves = _hashes(jobId, round, stage, _traces[key], false);
        for (uint256 i = 0; i < leaves.length; ++i) {
            if (leaves[i] != _truth(jobId, round, stage, i)) {
                bytes memory data = abi.encodeCall(
                    court.challenge, (jobId, round, stage, i, leaves[i], TraceTree.proof(leaves, i))
                );
                _openDispute(cheaterAlt, data, true, true);
                return;
            }
        }
    }

    /// @notice The cheater answers a dispute against it (with the leaf it committed).
    function cheaterRespond(uint256 disputeSeed) external step {
        if (_activeDisputes.length == 0) return;
        uint256 id = _activeDisputes[disputeSeed % _activeDisputes.length];
        DisputeView memory d = _disputeView(id);
        if (d.provider != cheater || _silentDispute[id]) return;
        _answer(id, d);
    }

    /// @notice Anyone slashes a provider that did not answer in time.
    function slashUnanswered(uint256 disputeSeed, uint256 callerSeed) external step {
        if (_activeDisputes.length == 0) return;
        uint256 id = _activeDisputes[disputeSeed % _activeDisputes.length];
        _decide(id, _anyone(callerSeed), abi.encodeCall(court.slashUnanswered, (id)), true);
    }

    /// @notice The lazy validator votes against the truth, or commits and never reveals.
    function lazyVote(uint256 disputeSeed, bool reveal) external step {
        if (_activeDisputes.length == 0) return;
        uint256 id = _activeDisputes[disputeSeed % _activeDisputes.length];
        DisputeView memory d = _disputeView(id);
        bool guilty = d.leafHash == _truth(d.jobId, d.round, d.stage, d.leafIndex);
        bytes32 salt = keccak256(abi.encode("lazy", id));
        if (!reveal) {
            _must(
                lazyValidator,
                address(court),
                abi.encodeCall(court.commitVote, (id, court.voteHash(id, lazyValidator, guilty, salt)))
            );
        } else {
            _must(lazyValidator, address(court), abi.encodeCall(court.revealVote, (id, guilty, salt)));
        }
    }

    /// @notice Anyone resolves a voted dispute.
    function resolve(uint256 disputeSeed, uint256 callerSeed) external step {
        if (_activeDisputes.length == 0) return;
        uint256 id = _activeDisputes[disputeSeed % _activeDisputes.length];
        _decide(id, _anyone(callerSeed), abi.encodeCall(court.resolve, (id)), true);
    }

    // ================================================================== validators and stake

    /// @notice A fresh throw-away validator registers, typically after a seal (finding H-2).
    function registerThrowaway() external step {
        if (_throwaways.length >= MAX_THROWAWAYS) return;
        address t = _actor(0x7000 + _throwaways.length, "throwaway", MIN_VALIDATOR_STAKE);
        _throwaways.push(t);
        _register(t, MIN_VALIDATOR_STAKE);
    }

    /// @notice A throw-away or the lazy validator asks to exit.
    function deregister(uint256 seed) external step {
        _must(_exiter(seed), address(registry), abi.encodeCall(registry.deregisterValidator, ()));
    }

    /// @notice An exiting validator takes its stake back (after the exit delay).
    function releaseValidatorStake(uint256 seed) external step {
        _must(_exiter(seed), address(registry), abi.encodeCall(registry.releaseValidatorStake, ()));
    }

    function _exiter(uint256 seed) private view returns (address) {
        uint256 i = seed % (_throwaways.length + 1);
        return i == _throwaways.length ? lazyValidator : _throwaways[i];
    }

    /// @notice Anyone stakes more.
    function stakeMore(uint256 actorSeed, uint256 amount) external step {
        address who = _everyone[actorSeed % _everyone.length];
        amount = 1 + amount % 2_000e18;
        if (who == address(burner) || who == treasury) return;
        _fund(who);
        _must(who, address(stakes), abi.encodeCall(stakes.stake, (amount)));
        _netStaked[who] += amount;
        _staker[who] = true;
    }

    /// @notice Anyone asks to unbond some stake.
    function requestUnstake(uint256 actorSeed, uint256 amount) external step {
        address who = _everyone[actorSeed % _everyone.length];
        amount = 1 + amount % 3_000e18;
        _must(who, address(stakes), abi.encodeCall(stakes.requestUnstake, (amount)));
    }

    /// @notice Anyone withdraws unbonded stake.
    function withdrawStake(uint256 actorSeed) external step {
        address who = _everyone[actorSeed % _everyone.length];
        (uint256 amount,) = stakes.unbondingOf(who);
        _must(who, address(stakes), abi.encodeCall(stakes.withdraw, ()));
        _netStaked[who] -= amount;
    }

    /// @notice Anyone withdraws its court credit.
    function withdrawCredit(uint256 actorSeed) external step {
        _must(_everyone[actorSeed % _everyone.length], address(court), abi.encodeCall(court.withdrawCredit, ()));
    }

    /// @notice The gas burner switches its hook between burning and accepting.
    function toggleBurner() external step {
        burner.setBurning(!burner.burning());
    }

    // ================================================================== shares and revenue

    /// @notice Anyone claims the shares credited to it, to any holder (the gas burner's own hook
    ///      can only delay its own claim).
    function claimShares(uint256 actorSeed, uint256 jobSeed, uint256 toSeed) external step {
        (bool ok, uint256 jobId) = _pickJob(jobSeed);
        if (!ok) return;
        address who = _holders[actorSeed % _holders.length];
        address to = _holders[toSeed % _holders.length];
        _must(who, address(vault), abi.encodeCall(vault.claimShares, (jobId, to)));
        ++_revenueEvents[jobId];
    }

    /// @notice Anyone claims the rewards credited to it.
    function claimRewards(uint256 actorSeed) external step {
        _must(_everyone[actorSeed % _everyone.length], address(vault), abi.encodeCall(vault.claimRewards, ()));
    }

    /// @notice A provider leaves its stage (allowed only while no round is in flight).
    function leaveStage(uint256 actorSeed, uint256 jobSeed) external step {
        (bool ok, uint256 jobId) = _pickJob(jobSeed);
        if (!ok) return;
        _must(_provider(actorSeed), address(market), abi.encodeCall(market.leaveStage, (jobId)));
    }

    /// @notice Proves a structural fault with the leaves themselves. Honest validators prove the
    ///         cheater's real faults; griefers try any kind with any leaves, honest ones included
    ///         (which must never succeed).
    function proveFault(uint256 actorSeed, uint256 jobSeed, uint256 stageSeed, uint256 kindSeed, uint256 aSeed, uint256 bSeed)
        external
        step
    {
        (bool ok, uint256 jobId) = _pickJob(jobSeed);
        if (!ok) return;
        (, , uint32 round,,) = market.jobState(jobId);
        uint32 stage = uint32(stageSeed % _params(jobId).numStages);
        int256 cheaterStage = market.stageOf(jobId, cheater);
        if (cheaterStage >= 0 && stageSeed % 2 == 0) stage = uint32(uint256(cheaterStage));
        Trace memory t = _traces[_key(jobId, round, stage)];
        if (t.provider == address(0)) return;
        address prover = _challenger(actorSeed);
        uint256 n = _leafCount(jobId);
        uint256 micro = _params(jobId).microBatches;
        uint256 a = aSeed % n;
        uint256 b = bSeed % n;
        IAuditCourt.FaultKind kind = IAuditCourt.FaultKind(kindSeed % 4);
        if (_isHonestValidator[prover]) {
            if (t.mode == DISCONTINUITY) {
                (kind, a, b) = (IAuditCourt.FaultKind.StepDiscontinuity, (t.pos - 1) * micro, t.pos * micro);
            } else if (t.mode == WRONG_START) {
                (kind, a) = (IAuditCourt.FaultKind.StartStateMismatch, 0);
            } else if (t.mode == WRONG_FINAL) {
                (kind, a) = (IAuditCourt.FaultKind.FinalStateMismatch, n - 1);
            } else if (t.mode == SPLIT_STEP) {
                (kind, a, b) = (IAuditCourt.FaultKind.StepParamsMismatch, t.pos * micro, t.pos * micro + micro - 1);
            } else {
                return;
            }
        }
        _proveFault(prover, FaultCall(jobId, round, stage, kind, a, b), t);
    }

    struct FaultCall {
        uint256 jobId;
        uint32 round;
        uint32 stage;
        IAuditCourt.FaultKind kind;
        uint256 a;
        uint256 b;
    }

    function _proveFault(address prover, FaultCall memory f, Trace memory t) private {
        bytes32[] memory hashes = _hashes(f.jobId, f.round, f.stage, t, false);
        IAuditCourt.LeafProof memory pa =
            IAuditCourt.LeafProof(_leaf(f.jobId, f.round, f.stage, t, f.a, false), TraceTree.proof(hashes, f.a));
        IAuditCourt.LeafProof memory pb =
            IAuditCourt.LeafProof(_leaf(f.jobId, f.round, f.stage, t, f.b, false), TraceTree.proof(hashes, f.b));
        uint256 before = _stakeOf(t.provider);
        _must(prover, address(court), abi.encodeCall(court.proveFault, (f.jobId, f.round, f.stage, f.kind, pa, pb)));
        ++faultsProven;
        _addCreditor(prover);
        uint256 lost = before - _stakeOf(t.provider);
        if (lost != 0) _bookSlash(f.jobId, f.round, f.stage, t.provider, lost, "a structural fault proof");
        if (t.mode == HONEST) _violation("a structural fault was proven against an honest trace");
    }

    /// @notice Revenue is deposited for a model; the ghost spreads it pro rata, exactly.
    function depositRevenue(uint256 jobSeed, uint256 amount) external step {
        (bool ok, uint256 modelId) = _pickJob(jobSeed);
        if (!ok) return;
        amount = 1 + amount % 50_000e18;
        uint256 supply = shares.totalSupply(modelId);
        _fund(depositor);
        _must(depositor, address(shares), abi.encodeCall(shares.depositRevenue, (modelId, amount)));
        ++_revenueEvents[modelId];
        for (uint256 i = 0; i < _holders.length; ++i) {
            uint256 bal = shares.balanceOf(_holders[i], modelId);
            if (bal != 0) _entitledScaled[modelId][_holders[i]] += Math.mulDiv(amount * 1e18, bal, supply);
        }
    }

    /// @notice A holder sells or gives shares to another holder.
    function transferShares(uint256 fromSeed, uint256 toSeed, uint256 jobSeed, uint256 amount) external step {
        (bool ok, uint256 modelId) = _pickJob(jobSeed);
        if (!ok) return;
        address from = _holders[fromSeed % _holders.length];
        address to = _holders[toSeed % _holders.length];
        uint256 bal = shares.balanceOf(from, modelId);
        if (bal == 0) return;
        amount = 1 + amount % bal;
        bytes memory data = abi.encodeCall(shares.safeTransferFrom, (from, to, modelId, amount, ""));
        _must(from, address(shares), data);
        ++_revenueEvents[modelId];
    }

    /// @notice A holder claims its revenue.
    function claimRevenue(uint256 holderSeed, uint256 jobSeed) external step {
        (bool ok, uint256 modelId) = _pickJob(jobSeed);
        if (!ok) return;
        address who = _holders[holderSeed % _holders.length];
        uint256 before = token.balanceOf(who);
        _must(who, address(shares), abi.encodeCall(shares.claim, (modelId)));
        _claimedRevenue[modelId][who] += token.balanceOf(who) - before;
        ++_revenueEvents[modelId];
    }

    /// @notice A holder burns shares.
    function burnShares(uint256 holderSeed, uint256 jobSeed, uint256 amount) external step {
        (bool ok, uint256 modelId) = _pickJob(jobSeed);
        if (!ok) return;
        address who = _holders[holderSeed % _holders.length];
        uint256 bal = shares.balanceOf(who, modelId);
        if (bal == 0) return;
        _must(who, address(shares), abi.encodeCall(shares.burn, (modelId, 1 + amount % bal)));
        ++_revenueEvents[modelId];
    }

    // ================================================================== time and liveness

    /// @notice A keeper bot (agents/roles/keeper.py does this) pokes every live job and dispute:
    ///         seals rounds past their commit deadline, finalizes rounds past their challenge
    ///         window, slashes unanswered disputes and resolves voted ones, cancels stalled jobs.
    function keeper(uint256 callerSeed) external step {
        address poker = _anyone(callerSeed);
        uint256 count = _activeDisputes.length;
        for (uint256 k = count; k > 0; --k) {
            if (k > _activeDisputes.length) continue;
            uint256 id = _activeDisputes[k - 1];
            IAuditCourt.DisputeStatus st = _disputeView(id).status;
            if (st == IAuditCourt.DisputeStatus.Open) {
                _decide(id, poker, abi.encodeCall(court.slashUnanswered, (id)), false);
            } else if (st == IAuditCourt.DisputeStatus.Voting) {
                _decide(id, poker, abi.encodeCall(court.resolve, (id)), false);
            }
        }
        for (uint256 j = 0; j < _jobIds.length; ++j) {
            uint256 jobId = _jobIds[j];
            if (_ended[jobId]) continue;
            (, , uint32 round,,) = market.jobState(jobId);
            uint32 numStages = _params(jobId).numStages;
            address[] memory stageHolders = _stageHolders(jobId, numStages);
            uint256[] memory before = _stakeSnapshot(jobId, numStages);
            if (_as(poker, address(market), abi.encodeCall(market.sealRound, (jobId, round)))) {
                _recordJobSlashes(jobId, stageHolders, before);
            }
            _finalize(jobId, poker, false);
            if (!_isTerminal(jobId) && market.stalledAt(jobId) != 0) _cancel(jobId, poker, false);
        }
    }

    /// @notice Time passes (up to three days); honest parties act at every moment they must.
    function warp(uint256 dt) external step {
        // Half the time under an hour (inside commit and challenge windows), a quarter up to
        // half a day, a quarter up to three days (past every window).
        uint256 span = dt % 4 == 0 ? 3 days : (dt % 4 == 1 ? 12 hours : 1 hours);
        _advance(1 + (dt >> 2) % span);
    }

    /// @notice From the current state, only permissionless pokes (anyone calling seal,
    ///         finalize, slash/resolve and stalled-job cancel, honest parties doing their duty,
    ///         nobody new joining) must bring the job to a terminal state within a bounded
    ///         number of steps. Checked on a snapshot that is thrown away afterwards.
    function checkLiveness(uint256 jobSeed) external step {
        (bool ok, uint256 jobId) = _pickJob(jobSeed);
        if (!ok) return;
        ++livenessChecks;
        uint256 snap = VM.snapshotState();
        uint256 violationsBefore = violations.length;
        IJobMarket.JobParams storage p = _params(jobId);
        uint256 bound = 2 * uint256(p.rounds) + 6;
        bool terminal = false;
        uint256 stepsTaken = 0;
        for (; stepsTaken < bound && !terminal; ++stepsTaken) {
            _advance(uint256(p.commitWindow) + p.challengeWindow + RESPONSE_WINDOW + COMMIT_VOTE_WINDOW
                + REVEAL_WINDOW + 1);
            _pokeAll(jobId);
            terminal = _isTerminal(jobId);
        }
        string memory found = violations.length > violationsBefore ? violations[violationsBefore] : "";
        VM.revertToStateAndDelete(snap);
        if (bytes(found).length != 0) _violation(string.concat("during liveness drive: ", found));
        if (!terminal) {
            _violation(
                string.concat("job ", _u(jobId), " not terminal after ", _u(stepsTaken), " poke steps")
            );
        }
    }

    // ================================================================== views for the invariants

    function jobIds() external view returns (uint256[] memory) {
        return _jobIds;
    }

    function everyone() external view returns (address[] memory) {
        return _everyone;
    }

    function holders() external view returns (address[] memory) {
        return _holders;
    }

    function activeDisputes() external view returns (uint256[] memory) {
        return _activeDisputes;
    }

    function violationCount() external view returns (uint256) {
        return violations.length;
    }

    function isHonest(address a) external view returns (bool) {
        return _isHonest[a];
    }

    function netStaked(address a) external view returns (uint256) {
        return _netStaked[a];
    }

    function entitledScaled(uint256 modelId, address h) external view returns (uint256) {
        return _entitledScaled[modelId][h];
    }

    function claimedRevenue(uint256 modelId, address h) external view returns (uint256) {
        return _claimedRevenue[modelId][h];
    }

    function revenueEvents(uint256 modelId) external view returns (uint256) {
        return _revenueEvents[modelId];
    }

    function contracts()
        external
        view
        returns (address token_, address stakes_, address shares_, address market_, address court_)
    {
        return (address(token), address(stakes), address(shares), address(market), address(court));
    }

    // ================================================================== honest duties

    function _duties() private {
        for (uint256 j = 0; j < _jobIds.length; ++j) {
            if (!_ended[_jobIds[j]]) _jobDuties(_jobIds[j]);
        }
        for (uint256 k = 0; k < _activeDisputes.length; ++k) _disputeDuties(_activeDisputes[k]);
    }

    function _jobDuties(uint256 jobId) private {
        (IJobMarket.JobStatus status,, uint32 round, uint64 start,) = market.jobState(jobId);
        if (status != IJobMarket.JobStatus.Running || start == 0) return;
        (, uint64 deadline,, uint64 sealBlock,) = market.roundInfo(jobId, round);
        if (sealBlock != 0) {
            // Validators record the seed as soon as it exists (before blockhash forgets it).
            if (!_seedRecorded[jobId][round]) {
                try market.recordAuditSeed(jobId, round) returns (bytes32 seed) {
                    if (seed != bytes32(0)) _seedRecorded[jobId][round] = true;
                } catch {}
            }
            return;
        }
        if (block.timestamp > deadline) return;
        uint32 numStages = _params(jobId).numStages;
        for (uint32 s = 0; s < numStages; ++s) {
            address holder = market.stageProvider(jobId, s);
            if (!_isHonest[holder]) continue;
            (bytes32 root,,,) = market.commitment(jobId, round, s);
            if (root != bytes32(0)) continue;
            _commit(holder, jobId, round, s, HONEST, 0);
            (,,, sealBlock,) = market.roundInfo(jobId, round);
            if (sealBlock != 0) return;
        }
    }

    function _disputeDuties(uint256 id) private {
        DisputeView memory d = _disputeView(id);
        if (d.status == IAuditCourt.DisputeStatus.Open) {
            if (_isHonest[d.provider] && !_unanswerable[id]) _answer(id, d);
            return;
        }
        if (d.status != IAuditCourt.DisputeStatus.Voting) return;
        address[] memory members = court.committee(id);
        bool guilty = d.leafHash != _truth(d.jobId, d.round, d.stage, d.leafIndex);
        for (uint256 i = 0; i < members.length; ++i) {
            address m = members[i];
            if (!_isHonestValidator[m]) continue;
            bytes32 sealed_ = court.voteHash(id, m, guilty, keccak256(abi.encode("honest", id, m)));
            if (block.timestamp <= d.commitDeadline) {
                VM.prank(m);
                try court.commitVote(id, sealed_) {} catch {}
            }
        }
        for (uint256 i = 0; i < members.length; ++i) {
            address m = members[i];
            if (!_isHonestValidator[m]) continue;
            VM.prank(m);
            try court.revealVote(id, guilty, keccak256(abi.encode("honest", id, m))) {} catch {}
        }
    }

    /// @dev The provider answers with what it committed: `respond`, or `revealLeaf` with the
    ///      leaf and its proof. An honest provider that cannot is a broken property (C-1).
    function _answer(uint256 id, DisputeView memory d) private {
        bytes memory data;
        if (d.leafHash != bytes32(0)) {
            data = abi.encodeCall(court.respond, (id, CID));
        } else {
            bytes32[] memory leaves = _hashes(d.jobId, d.round, d.stage, _traces[_key(d.jobId, d.round, d.stage)], false);
            if (d.leafIndex >= leaves.length) {
                if (_isHonest[d.provider]) {
                    _unanswerable[id] = true;
                    _violation(
                        string.concat(
                            "dispute ", _u(id), " on leaf ", _u(d.leafIndex), " of a ", _u(leaves.length),
                            "-leaf trace: the honest provider has no proof to answer with"
                        )
                    );
                }
                return;
            }
            data = abi.encodeCall(
                court.revealLeaf, (id, leaves[d.leafIndex], TraceTree.proof(leaves, d.leafIndex), CID)
            );
        }
        bool ok = _as(d.provider, address(court), data);
        if (!ok) {
            if (_isHonest[d.provider]) {
                _unanswerable[id] = true;
                _violation(string.concat("honest provider's answer to dispute ", _u(id), " reverted"));
            }
            return;
        }
        _checkCommittee(id, d);
    }

    function _checkCommittee(uint256 id, DisputeView memory d) private {
        (,,,,, uint64 sealBlock) = market.auditTarget(d.jobId, d.round, d.stage);
        address[] memory members = court.committee(id);
        for (uint256 i = 0; i < members.length; ++i) {
            address m = members[i];
            if (m == d.provider || m == d.challenger) {
                _violation(string.concat("dispute ", _u(id), ": a party sits on its committee"));
            }
            if (_registeredBlock[m] > sealBlock) {
                _violation(
                    string.concat(
                        "dispute ", _u(id), ": validator registered at block ", _u(_registeredBlock[m]),
                        " after the seal at ", _u(sealBlock), " sits on the committee"
                    )
                );
            }
        }
    }

    // ================================================================== actions with ghost checks

    function _commit(address who, uint256 jobId, uint32 round, uint32 stage, uint8 mode, uint32 pos) private {
        Trace memory t;
        t.provider = who;
        t.mode = mode;
        t.pos = pos;
        // An honest provider loads the checkpoint it must start from and checks its state hash.
        (t.start,) = market.stateHashes(jobId, round, stage);
        t.finalState = mode == WRONG_FINAL
            ? keccak256(abi.encode("wrong final", jobId, round, stage))
            : _state(jobId, round, stage, _params(jobId).stepsPerRound);
        bytes32 root = TraceTree.root(_hashes(jobId, round, stage, t, false));
        bytes memory data = abi.encodeCall(market.commitRound, (jobId, round, stage, root, t.finalState, CID));
        if (!_as(who, address(market), data)) {
            if (_isHonest[who]) _violation(string.concat("honest commit reverted in job ", _u(jobId)));
            return;
        }
        bytes32 key = _key(jobId, round, stage);
        _traces[key] = t;
        if (_isHonest[who]) {
            _honestWork[key] = true;
            _honestKeys[jobId].push(key);
        }
    }

    function _openDispute(address challenger, bytes memory data, bool silent, bool bubble) private {
        _fund(challenger);
        uint256 before = court.disputeCount();
        if (!_call(challenger, address(court), data, bubble)) return;
        uint256 id = court.disputeCount();
        if (id != before + 1) _violation("dispute count did not grow by one");
        _activeDisputes.push(id);
        _silentDispute[id] = silent;
        ++disputesOpened;
    }

    /// @dev Runs a court call that can decide dispute `id` and books what the accused provider
    ///      lost against the disputed commitment. A loss of an honest provider is a violation,
    ///      unless the corrupt validator held a majority of the revealed seats (the court's honest-
    ///      majority assumption failed, which stake-weighted draws make rare, not impossible).
    function _decide(uint256 id, address caller, bytes memory data, bool bubble) private {
        DisputeView memory d = _disputeView(id);
        uint256 before = _stakeOf(d.provider);
        _addCommittee(id);
        bool captured = _capturedByCorrupt(id);
        if (!_call(caller, address(court), data, bubble)) return;
        uint256 lost = before - _stakeOf(d.provider);
        _addCreditor(d.challenger);
        _addCreditor(d.provider);
        _addCommittee(id);
        IAuditCourt.DisputeStatus status = _disputeView(id).status;
        if (status == IAuditCourt.DisputeStatus.ProviderSlashed) ++providersSlashed;
        if (status == IAuditCourt.DisputeStatus.ChallengerSlashed) ++challengersSlashed;
        if (lost != 0 && captured && _isHonest[d.provider]) {
            ++corruptCaptures;
            _netStaked[d.provider] -= lost;
            slashedInJob[d.jobId][d.provider] += lost;
        } else if (lost != 0) {
            _bookSlash(d.jobId, d.round, d.stage, d.provider, lost, string.concat("dispute ", _u(id)));
            // M-5: staying silent (say, on one's own second account's challenge) must cost the
            // whole job allocation, never less than being convicted.
            if (bytes4(data) == court.slashUnanswered.selector && lost != _params(d.jobId).minStake) {
                _violation(string.concat("unanswered dispute ", _u(id), " cost less than the whole allocation"));
            }
        }
        _refreshDisputes();
    }

    function _addCommittee(uint256 id) private {
        address[] memory members = court.committee(id);
        for (uint256 i = 0; i < members.length; ++i) _addCreditor(members[i]);
    }

    /// @dev Whether the corrupt validator holds a majority of the dispute's revealed seats.
    function _capturedByCorrupt(uint256 id) private view returns (bool) {
        (, uint16 revealedSeats,,,,) = court.tally(id);
        return revealedSeats != 0 && 2 * court.seatsOf(id, lazyValidator) > revealedSeats;
    }

    /// @dev Books `lost` stake of `provider` against its commitment of (`jobId`, `round`,
    ///      `stage`): slashed at most once, at most the job's allocation, never an honest one.
    function _bookSlash(uint256 jobId, uint32 round, uint32 stage, address provider, uint256 lost, string memory by)
        private
    {
        bytes32 key = _key(jobId, round, stage);
        ++slashCount[key];
        slashedAmount[key] += lost;
        slashedInJob[jobId][provider] += lost;
        uint256 allocation = _params(jobId).minStake;
        if (slashCount[key] > 1) {
            _violation(string.concat("commitment of job ", _u(jobId), " slashed a second time, by ", by));
        }
        if (slashedAmount[key] > allocation) {
            _violation(
                string.concat("commitment slashed ", _u(slashedAmount[key]), " > its job's allocation ", _u(allocation))
            );
        }
        if (slashedInJob[jobId][provider] > allocation) {
            _violation(string.concat("provider lost more than its allocation in job ", _u(jobId)));
        }
        if (_isHonest[provider]) _violation(string.concat("honest provider slashed by ", by));
    }

    function _finalize(uint256 jobId, address caller, bool bubble) private {
        IJobMarket.JobParams storage p = _params(jobId);
        (, , uint32 round,,) = market.jobState(jobId);
        address[] memory payees = new address[](p.numStages);
        uint256[] memory tokensBefore = new uint256[](p.numStages);
        uint256[] memory sharesBefore = new uint256[](p.numStages);
        for (uint32 s = 0; s < p.numStages; ++s) {
            (bytes32 root,, address provider, bool slashed) = market.commitment(jobId, round, s);
            if (root == bytes32(0) || !_isHonest[provider]) continue;
            if (slashed) _violation(string.concat("honest commitment of job ", _u(jobId), " is marked slashed"));
            payees[s] = provider;
            tokensBefore[s] = _rewardsOf(provider);
            sharesBefore[s] = _sharesOf(jobId, provider);
        }
        address[] memory stageHolders = _stageHolders(jobId, p.numStages);
        uint256[] memory stakeBefore = _stakeSnapshot(jobId, p.numStages);
        if (!_call(caller, address(market), abi.encodeCall(market.finalizeRound, (jobId, round)), bubble)) return;
        ++roundsFinalized;
        ++_revenueEvents[jobId];
        _hasShares[jobId] = true;
        _recordJobSlashes(jobId, stageHolders, stakeBefore);
        for (uint32 s = 0; s < p.numStages; ++s) {
            address provider = payees[s];
            if (provider == address(0)) continue;
            // One provider holds one stage per job, so each payee is paid once here.
            if (_rewardsOf(provider) - tokensBefore[s] != p.rewardPerStageRound) {
                _violation(string.concat("honest stage of job ", _u(jobId), " not paid its reward"));
            }
            if (_sharesOf(jobId, provider) - sharesBefore[s] != p.sharesPerStageRound) {
                _violation(string.concat("honest stage of job ", _u(jobId), " not given its shares"));
            }
            _paid[_key(jobId, round, s)] = true;
        }
        if (_isTerminal(jobId)) _onTerminal(jobId, true);
    }

    function _cancel(uint256 jobId, address caller, bool bubble) private {
        IJobMarket.JobParams storage p = _params(jobId);
        address[] memory stageHolders = _stageHolders(jobId, p.numStages);
        uint256[] memory stakeBefore = _stakeSnapshot(jobId, p.numStages);
        if (!_call(caller, address(market), abi.encodeCall(market.cancelJob, (jobId)), bubble)) return;
        _recordJobSlashes(jobId, stageHolders, stakeBefore);
        _onTerminal(jobId, false);
    }

    /// @dev A job just ended: all honest work in it must have been paid.
    function _onTerminal(uint256 jobId, bool completed) private {
        _ended[jobId] = true;
        if (completed) ++jobsCompleted;
        else ++jobsCancelled;
        bytes32[] storage keys = _honestKeys[jobId];
        for (uint256 i = 0; i < keys.length; ++i) {
            if (!_paid[keys[i]]) {
                _violation(string.concat("job ", _u(jobId), " ended with honest work unpaid"));
                return;
            }
        }
    }

    /// @dev Liveness penalties and other job-level slashes: at most the job's allocation each.
    function _recordJobSlashes(uint256 jobId, address[] memory holders, uint256[] memory before) private {
        uint256 allocation = _params(jobId).minStake;
        for (uint256 s = 0; s < holders.length; ++s) {
            address h = holders[s];
            if (h == address(0)) continue;
            uint256 now_ = _stakeOf(h);
            if (now_ >= before[s]) continue;
            slashedInJob[jobId][h] += before[s] - now_;
            if (slashedInJob[jobId][h] > allocation) {
                _violation(string.concat("provider lost more than its allocation in job ", _u(jobId)));
            }
            if (_isHonest[h]) _violation(string.concat("honest provider lost stake in job ", _u(jobId)));
        }
    }

    function _pokeAll(uint256 jobId) private {
        address poker = _griefers[0];
        for (uint256 k = 0; k < _activeDisputes.length; ++k) {
            uint256 id = _activeDisputes[k];
            _decide(id, poker, abi.encodeCall(court.slashUnanswered, (id)), false);
            if (k < _activeDisputes.length && _activeDisputes[k] == id) {
                _decide(id, poker, abi.encodeCall(court.resolve, (id)), false);
            }
        }
        if (_isTerminal(jobId)) return;
        (, , uint32 round,,) = market.jobState(jobId);
        uint32 numStages = _params(jobId).numStages;
        address[] memory stageHolders = _stageHolders(jobId, numStages);
        uint256[] memory before = _stakeSnapshot(jobId, numStages);
        _as(poker, address(market), abi.encodeCall(market.sealRound, (jobId, round)));
        _recordJobSlashes(jobId, stageHolders, before);
        _duties();
        _finalize(jobId, poker, false);
        _duties();
        // A job waiting for stages past its stall bound may be cancelled by anyone.
        if (!_isTerminal(jobId)) _cancel(jobId, poker, false);
    }

    /// @dev Moves the clock on by `dt` seconds, one block per 12 s. Stops wherever an honest
    ///      party must act at that moment: at a round's seed anchor block (the seed is read from
    ///      that block's prevrandao, so it must be recorded in it) and just after a vote commit
    ///      deadline (honest members reveal), so a long jump never makes them miss either.
    function _advance(uint256 dt) private {
        uint256 target = nowTime + dt;
        for (uint256 guard = 0; guard < 16 && nowTime < target; ++guard) {
            _duties();
            uint256 next = target;
            for (uint256 k = 0; k < _activeDisputes.length; ++k) {
                DisputeView memory d = _disputeView(_activeDisputes[k]);
                if (d.status != IAuditCourt.DisputeStatus.Voting) continue;
                uint256 opens = uint256(d.commitDeadline) + 1;
                if (opens > nowTime && opens < next) next = opens;
            }
            uint256 blocks = (next - nowTime) / 12;
            for (uint256 j = 0; j < _jobIds.length; ++j) {
                uint256 jobId = _jobIds[j];
                if (_ended[jobId]) continue;
                (, , uint32 round,,) = market.jobState(jobId);
                (,,, uint64 sealBlock,) = market.roundInfo(jobId, round);
                if (sealBlock == 0 || _seedRecorded[jobId][round]) continue;
                uint256 anchor = market.seedAnchor(jobId, round);
                if (anchor > nowBlock && anchor - nowBlock <= blocks) {
                    blocks = anchor - nowBlock;
                    next = nowTime + 12 * blocks;
                }
            }
            if (blocks == 0) blocks = 1;
            nowTime = next;
            nowBlock += blocks;
            VM.warp(nowTime);
            VM.roll(nowBlock);
            VM.prevrandao(keccak256(abi.encode("prevrandao", nowBlock)));
            _duties();
        }
    }


    // ================================================================== invariants

    /// @dev Every property, after every action (the invariant test fails on the first violation
    ///      recorded). Checked here rather than in the test's invariant function because forge
    ///      makes each external call from an invariant function far slower than from a handler.
    function _checkInvariants() private {
        _checkStakeManagerBalance();
        _checkMarketBalance();
        _checkCourtBalance();
        _checkSharesBalanceAndProRata();
    }

    /// @dev StakeManager holds exactly the stake and unbonding stake of every account; no honest
    ///      party ever has less than it put in.
    function _checkStakeManagerBalance() private {
        uint256 owed = 0;
        for (uint256 i = 0; i < _everyone.length; ++i) {
            address a = _everyone[i];
            if (!_staker[a]) continue;
            uint256 st = _stakeOf(a);
            owed += st;
            // An honest party (provider answering every dispute with its true leaf, validator
            // voting the truth in time) never loses stake.
            if (_isHonest[a]) _checkEq(st, _netStaked[a], "honest party lost stake");
        }
        _checkEq(token.balanceOf(address(stakes)), owed, "StakeManager balance != stake + unbonding");
    }

    /// @dev JobTerms holds exactly the escrow of the jobs, the RewardVault exactly the rewards
    ///      credited and unclaimed, and the JobMarket nothing.
    function _checkMarketBalance() private {
        uint256 owed = 0;
        for (uint256 i = 0; i < _jobIds.length; ++i) {
            (,,,, uint256 escrow) = market.jobState(_jobIds[i]);
            owed += escrow;
        }
        uint256 rewards = 0;
        // Rewards are credited only to stage providers (the owner gets shares, not rewards).
        for (uint256 i = 0; i < _holders.length; ++i) rewards += vault.rewardsOwed(_holders[i]);
        _checkEq(rewards, vault.totalRewardsOwed(), "RewardVault: sum of rewards owed != its total");
        _checkEq(token.balanceOf(address(vault)), rewards, "RewardVault balance != rewards owed");
        _checkEq(owed, terms.totalEscrow(), "JobTerms: sum of escrows != its total");
        _checkEq(token.balanceOf(address(terms)), owed, "JobTerms balance != escrow");
        _checkEq(token.balanceOf(address(market)), 0, "JobMarket holds tokens");
    }

    /// @dev AuditCourt holds exactly the bonds of undecided disputes plus every credit.
    function _checkCourtBalance() private {
        uint256 owed = 0;
        for (uint256 i = 0; i < _activeDisputes.length; ++i) {
            (,,, uint256 bond,,) = court.tally(_activeDisputes[i]);
            owed += bond;
        }
        for (uint256 i = 0; i < _creditors.length; ++i) owed += court.credit(_creditors[i]);
        _checkEq(token.balanceOf(address(court)), owed, "AuditCourt balance != bonds + credits");
    }

    /// @dev ModelShares holds exactly the revenue deposited and not claimed and owes no more;
    ///      every share is held by a holder the ghost follows; no holder gets more than its exact
    ///      pro-rata revenue (claimed + claimable), and none is short by more than a wei per event.
    function _checkSharesBalanceAndProRata() private {
        uint256 owed = 0;
        address[] memory hs = _holders;
        for (uint256 i = 0; i < _jobIds.length; ++i) {
            uint256 m = _jobIds[i];
            if (!_hasShares[m]) continue;
            uint256 deposited = shares.totalDeposited(m);
            uint256 unclaimed = deposited - shares.totalClaimed(m);
            owed += unclaimed;
            uint256[] memory ids = new uint256[](hs.length);
            for (uint256 h = 0; h < hs.length; ++h) ids[h] = m;
            uint256[] memory bals = shares.balanceOfBatch(hs, ids);
            uint256 held = 0;
            for (uint256 h = 0; h < hs.length; ++h) held += bals[h];
            _checkEq(held, shares.totalSupply(m), "shares held outside the known holders");
            if (deposited == 0) continue;
            uint256 claimableSum = 0;
            uint256 events = _revenueEvents[m];
            for (uint256 h = 0; h < hs.length; ++h) {
                address a = hs[h];
                uint256 exact = _entitledScaled[m][a];
                if (exact == 0 && bals[h] == 0) continue;
                uint256 claimable = shares.claimable(m, a);
                claimableSum += claimable;
                uint256 got = (_claimedRevenue[m][a] + claimable) * 1e18;
                // The ghost rounds each deposit's share down by < 1e-18 wei.
                if (got > exact + events) {
                    _violation(string.concat("holder gets more than its pro-rata revenue of model ", _u(m)));
                }
                if (exact > got + (events + 1) * 1e18) {
                    _violation(
                        string.concat("holder short of its revenue of model ", _u(m), " by more than a wei per event")
                    );
                }
            }
            if (claimableSum > unclaimed) _violation("ModelShares owes more revenue than it holds");
        }
        _checkEq(token.balanceOf(address(shares)), owed, "ModelShares balance != unclaimed revenue");
    }

    function _addCreditor(address a) private {
        if (_isCreditor[a]) return;
        _isCreditor[a] = true;
        _creditors.push(a);
    }

    function _checkEq(uint256 actual, uint256 expected, string memory what) private {
        if (actual != expected) {
            _violation(string.concat(what, ": ", _u(actual), " vs ", _u(expected)));
        }
    }

    // ================================================================== helpers

    struct DisputeView {
        uint256 jobId;
        uint32 round;
        uint32 stage;
        uint256 leafIndex;
        bytes32 leafHash;
        address challenger;
        address provider;
        IAuditCourt.DisputeStatus status;
        uint64 responseDeadline;
        uint64 commitDeadline;
        uint64 revealDeadline;
    }

    /// @dev Reads `dispute(id)` word by word: its twelve return values are too many for the stack.
    function _disputeView(uint256 id) private view returns (DisputeView memory d) {
        (bool ok, bytes memory r) = address(court).staticcall(abi.encodeCall(court.dispute, (id)));
        require(ok, "dispute view reverted");
        d.jobId = _word(r, 0);
        d.round = uint32(_word(r, 1));
        d.stage = uint32(_word(r, 2));
        d.leafIndex = _word(r, 3);
        d.leafHash = bytes32(_word(r, 4));
        d.challenger = address(uint160(_word(r, 5)));
        d.provider = address(uint160(_word(r, 6)));
        d.status = IAuditCourt.DisputeStatus(_word(r, 7));
        d.responseDeadline = uint64(_word(r, 8));
        d.commitDeadline = uint64(_word(r, 9));
        d.revealDeadline = uint64(_word(r, 10));
    }

    function _word(bytes memory r, uint256 i) private pure returns (uint256 w) {
        assembly ("memory-safe") {
            w := mload(add(r, add(32, mul(32, i))))
        }
    }

    function _refreshDisputes() private {
        uint256 k = 0;
        while (k < _activeDisputes.length) {
            IAuditCourt.DisputeStatus st = _disputeView(_activeDisputes[k]).status;
            if (st == IAuditCourt.DisputeStatus.Open || st == IAuditCourt.DisputeStatus.Voting) {
                ++k;
            } else {
                _activeDisputes[k] = _activeDisputes[_activeDisputes.length - 1];
                _activeDisputes.pop();
            }
        }
    }

    /// @dev Calls `target` as `who`; returns whether it succeeded (the gas burner calls through
    ///      its `execute`).
    function _as(address who, address target, bytes memory data) private returns (bool ok) {
        if (who == address(burner)) {
            try burner.execute{gas: BLOCK_GAS}(target, data) {
                return true;
            } catch {
                return false;
            }
        }
        VM.prank(who);
        (ok,) = target.call{gas: BLOCK_GAS}(data);
    }

    /// @dev Like `_as`, but a rejected call reverts the action, so forge counts it as a revert.
    function _must(address who, address target, bytes memory data) private {
        if (who == address(burner)) {
            burner.execute{gas: BLOCK_GAS}(target, data);
            return;
        }
        VM.prank(who);
        (bool ok, bytes memory ret) = target.call{gas: BLOCK_GAS}(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 32), mload(ret))
            }
        }
    }

    function _call(address who, address target, bytes memory data, bool bubble) private returns (bool) {
        if (bubble) {
            _must(who, target, data);
            return true;
        }
        return _as(who, target, data);
    }

    function _actor(uint256 key, string memory name, uint256 stake_) private returns (address a) {
        a = VM.addr(key);
        VM.label(a, name);
        _fund(a);
        if (stake_ != 0) _stake(a, stake_);
        _everyone.push(a);
    }

    function _fund(address a) private {
        if (token.balanceOf(a) < FUNDS / 2) token.mint(a, FUNDS);
        if (token.allowance(a, address(court)) < FUNDS) {
            _approveAll(a);
        }
    }

    function _approveAll(address a) private {
        address[4] memory spenders = [address(stakes), address(market), address(court), address(shares)];
        for (uint256 i = 0; i < 4; ++i) {
            _as(a, address(token), abi.encodeCall(token.approve, (spenders[i], type(uint256).max)));
        }
    }

    function _stake(address a, uint256 amount) private {
        _as(a, address(stakes), abi.encodeCall(stakes.stake, (amount)));
        _netStaked[a] += amount;
        _staker[a] = true;
    }

    function _register(address v, uint256 amount) private {
        if (_as(v, address(registry), abi.encodeCall(registry.registerValidator, (amount)))) {
            _registeredBlock[v] = uint64(block.number);
        }
    }

    function _stakeOf(address a) private view returns (uint256) {
        (uint256 unbonding,) = stakes.unbondingOf(a);
        return stakes.stakeOf(a) + unbonding;
    }

    function _stakeSnapshot(uint256 jobId, uint32 numStages) private view returns (uint256[] memory s) {
        s = new uint256[](numStages);
        for (uint32 i = 0; i < numStages; ++i) s[i] = _stakeOf(market.stageProvider(jobId, i));
    }

    function _stageHolders(uint256 jobId, uint32 numStages) private view returns (address[] memory h) {
        h = new address[](numStages);
        for (uint32 i = 0; i < numStages; ++i) h[i] = market.stageProvider(jobId, i);
    }

    /// @dev Rewards credited to a provider so far: claimed (in its balance) plus still owed.
    function _rewardsOf(address a) private view returns (uint256) {
        return token.balanceOf(a) + vault.rewardsOwed(a);
    }

    function _sharesOf(uint256 jobId, address a) private view returns (uint256) {
        return shares.balanceOf(a, jobId) + vault.sharesOwed(jobId, a);
    }

    function _isTerminal(uint256 jobId) private view returns (bool) {
        (IJobMarket.JobStatus status,,,,) = market.jobState(jobId);
        return status == IJobMarket.JobStatus.Completed || status == IJobMarket.JobStatus.Cancelled;
    }

    function _leafCount(uint256 jobId) private view returns (uint256) {
        IJobMarket.JobParams storage p = _params(jobId);
        return uint256(p.stepsPerRound) * p.microBatches;
    }

    /// @dev The state after `step` steps of the stage's honest training in this round (step 0's
    ///      state is the trace's start, the checkpoint it had to load).
    function _state(uint256 jobId, uint32 round, uint32 stage, uint256 step) private pure returns (bytes32) {
        return keccak256(abi.encode("state", jobId, round, stage, step));
    }

    /// @dev Leaf `index` (step * microBatches + microBatch) of trace `t`: the honest leaf, or with
    ///      `honest` false the leaf the trace's cheat (if any) committed.
    function _leaf(uint256 jobId, uint32 round, uint32 stage, Trace memory t, uint256 index, bool honest)
        private
        view
        returns (IAuditCourt.TraceLeaf memory l)
    {
        uint256 micro = _params(jobId).microBatches;
        l.step = index / micro;
        l.microBatch = index % micro;
        l.paramsBefore = l.step == 0 ? t.start : _state(jobId, round, stage, l.step);
        l.paramsAfter = _state(jobId, round, stage, l.step + 1);
        bytes32 base = keccak256(abi.encode(jobId, round, stage, index));
        l.input = keccak256(abi.encode("input", base));
        l.output = keccak256(abi.encode("output", base));
        l.gradIn = keccak256(abi.encode("gradIn", base));
        l.gradOut = keccak256(abi.encode("gradOut", base));
        l.dataRef = keccak256(abi.encode("data", base));
        if (honest || t.mode == HONEST) return l;
        if (t.mode == WRONG_OUTPUT && index == t.pos) l.output = keccak256(abi.encode("forged", base));
        if (t.mode == WRONG_START && l.step == 0) l.paramsBefore = keccak256(abi.encode("other start", base));
        if (t.mode == DISCONTINUITY && l.step == t.pos) l.paramsBefore = keccak256(abi.encode("swapped", jobId, round, stage));
        if (t.mode == SPLIT_STEP && l.step == t.pos && l.microBatch == micro - 1) {
            l.paramsAfter = keccak256(abi.encode("split", base));
        }
    }

    function _leafHash(IAuditCourt.TraceLeaf memory l) private pure returns (bytes32) {
        return keccak256(abi.encode(l));
    }

    /// @dev Every leaf hash of trace `t` (as committed, or the honest ones).
    function _hashes(uint256 jobId, uint32 round, uint32 stage, Trace memory t, bool honest)
        private
        view
        returns (bytes32[] memory h)
    {
        h = new bytes32[](_leafCount(jobId));
        for (uint256 i = 0; i < h.length; ++i) h[i] = _leafHash(_leaf(jobId, round, stage, t, i, honest));
    }

    /// @dev What an honest replay of leaf `index` of the commitment gives: the verdict honest
    ///      validators vote.
    function _truth(uint256 jobId, uint32 round, uint32 stage, uint256 index) private view returns (bytes32) {
        return _leafHash(_leaf(jobId, round, stage, _traces[_key(jobId, round, stage)], index, true));
    }

    function _key(uint256 jobId, uint32 round, uint32 stage) private pure returns (bytes32) {
        return keccak256(abi.encode(jobId, round, stage));
    }

    function _params(uint256 jobId) private view returns (IJobMarket.JobParams storage) {
        return _terms[jobId];
    }

    function _liveJobs() private view returns (uint256 n) {
        for (uint256 j = 0; j < _jobIds.length; ++j) {
            if (!_ended[_jobIds[j]]) ++n;
        }
    }

    function _pickJob(uint256 seed) private view returns (bool, uint256) {
        if (_jobIds.length == 0) return (false, 0);
        return (true, _jobIds[seed % _jobIds.length]);
    }

    function _provider(uint256 seed) private view returns (address) {
        uint256 n = _honestProviders.length + 2;
        uint256 i = seed % n;
        if (i < _honestProviders.length) return _honestProviders[i];
        return i == _honestProviders.length ? cheater : address(burner);
    }

    function _challenger(uint256 seed) private view returns (address) {
        uint256 i = seed % 8;
        if (i < 3) return _honestValidators[i];
        if (i < 5) return _griefers[i - 3];
        if (i == 5) return cheaterAlt;
        if (i == 6) return _owners[seed % _owners.length];
        return _throwaways.length == 0 ? _griefers[0] : _throwaways[seed % _throwaways.length];
    }

    function _anyone(uint256 seed) private view returns (address) {
        return _everyone[seed % _everyone.length];
    }

    function _randomParams(uint256 seed) private pure returns (IJobMarket.JobParams memory p, bool outOfBounds) {
        uint256 r = uint256(keccak256(abi.encode(seed)));
        bool extreme = r % 16 == 0;
        p.specCID = CID;
        p.numStages = uint32(1 + (r >> 8) % 3);
        p.rounds = uint32(1 + (r >> 16) % 3);
        p.stepsPerRound = uint32(1 + (r >> 24) % 4);
        p.microBatches = uint32(1 + (r >> 28) % 3);
        p.rewardPerStageRound = 1e18 + (r >> 32) % 100e18;
        p.sharesPerStageRound = 1e18 + (r >> 40) % 1_000e18;
        p.minStake = 100e18 + (r >> 48) % 500e18;
        p.commitWindow = uint64(10 minutes + (r >> 56) % 6 hours);
        p.challengeWindow = uint64(1 hours + (r >> 64) % 12 hours);
        p.auditLeaves = 1;
        p.ownerShareBps = uint16((r >> 72) % 5_000);
        p.validatorPool = (r >> 80) % 300e18;
        if (extreme) {
            // Terms the review showed could freeze a job (M-1): each must be refused.
            outOfBounds = true;
            uint256 which = (r >> 96) % 4;
            if (which == 0) p.commitWindow = type(uint64).max - uint64((r >> 100) % 1000);
            if (which == 1) p.sharesPerStageRound = type(uint256).max >> ((r >> 100) % 8);
            if (which == 2) p.challengeWindow = uint64(1 + (r >> 100) % 12);
            if (which == 3) p.rounds = uint32(10_001 + (r >> 100) % 1_000_000);
        }
    }

    function _violation(string memory what) private {
        if (violations.length < 16) violations.push(what);
    }

    function _u(uint256 v) private pure returns (string memory) {
        if (v == 0) return "0";
        bytes memory b = new bytes(78);
        uint256 n = 0;
        while (v != 0) {
            b[77 - n++] = bytes1(uint8(48 + v % 10));
            v /= 10;
        }
        bytes memory out = new bytes(n);
        for (uint256 i = 0; i < n; ++i) out[i] = b[78 - n + i];
        return string(out);
    }
}
