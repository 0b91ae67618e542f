// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title ProviderDirectory
/// @notice Where a provider's stage-to-stage transport can be reached, and with which key.
///         Each record is written by the account itself (`msg.sender`), so the record of the
///         staked provider key that holds a stage in the JobMarket is signed by that key: a
///         peer reads the stage's provider from the JobMarket, its endpoint and Curve25519
///         transport key from here, and accepts a connection only from that key.
/// @dev No stake check here on purpose: a record matters only for an address that the
///      JobMarket names as a stage's provider, and the JobMarket checks stake when it joins.
///      One transport key belongs to one account, so a key seen on a connection names a
///      single on-chain identity.
contract ProviderDirectory {
    struct Record {
        string endpoint; // e.g. "tcp://203.0.113.7:7100"
        bytes32 transportKey; // Curve25519 public key of the transport (ZeroMQ CURVE)
        uint64 updatedAt; // block timestamp of the last publish
    }

    mapping(address account => Record) private _records;
    mapping(bytes32 transportKey => address account) private _keyOwner;

    /// @notice A record was published or replaced.
    event EndpointPublished(address indexed account, string endpoint, bytes32 transportKey);

    /// @notice The endpoint string is empty or longer than 200 bytes.
    error InvalidEndpoint(uint256 length);
    /// @notice The zero key is not a key.
    error ZeroTransportKey();
    /// @notice The key is already bound to another account.
    error TransportKeyTaken(bytes32 transportKey, address owner);

    /// @notice Publish (or replace) the caller's transport endpoint and public key.
    /// @param endpoint Where peers connect, as a ZeroMQ address ("tcp://host:port").
    /// @param transportKey The 32-byte Curve25519 public key the endpoint serves with.
    function publish(string calldata endpoint, bytes32 transportKey) external {
        uint256 len = bytes(endpoint).length;
        if (len == 0 || len > 200) revert InvalidEndpoint(len);
        if (transportKey == bytes32(0)) revert ZeroTransportKey();
        address owner = _keyOwner[transportKey];
        if (owner != address(0) && owner != msg.sender) {
            revert TransportKeyTaken(transportKey, owner);
        }
        bytes32 old = _records[msg.sender].transportKey;
        if (old != bytes32(0) && old != transportKey) delete _keyOwner[old];
        _keyOwner[transportKey] = msg.sender;
        _records[msg.sender] = Record(endpoint, transportKey, uint64(block.timestamp));
        emit EndpointPublished(msg.sender, endpoint, transportKey);
    }

    /// @notice The record of `account` (empty endpoint and zero key when it has none).
    /// @param account The account, normally a stage's provider.
    /// @return endpoint Where to connect.
    /// @return transportKey The Curve25519 public key to expect.
    /// @return updatedAt When it was last published.
    function recordOf(address account)
        external
        view
        returns (string memory endpoint, bytes32 transportKey, uint64 updatedAt)
    {
        Record storage r = _records[account];
        return (r.endpoint, r.transportKey, r.updatedAt);
    }

    /// @notice The account a transport key is bound to (zero when unbound).
    /// @param transportKey A Curve25519 public key seen on a connection.
    /// @return The account that published it.
    function ownerOfKey(bytes32 transportKey) external view returns (address) {
        return _keyOwner[transportKey];
    }
}
