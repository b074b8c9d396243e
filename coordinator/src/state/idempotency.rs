//! The requests the state remembers, so a retried request returns its first
//! response instead of applying twice.
//!
//! The memory is bounded by count, not time (apply has no clock): the oldest
//! key is forgotten when a new one would exceed the capacity. The capacity
//! is part of the replicated state, not a constant of the binary, so nodes
//! running different versions still forget the same keys at the same entry.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::command::{Command, CommandResponse, IdempotencyKey};

/// How many requests a fresh state remembers.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// A bounded, insertion-ordered map from idempotency key to the fingerprint
/// of the command first sent with it and the response it got.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentRequests {
    capacity: usize,
    order: VecDeque<IdempotencyKey>,
    by_key: HashMap<IdempotencyKey, Remembered>,
}

/// What is remembered of one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Remembered {
    fingerprint: u64,
    response: CommandResponse,
}

/// What a lookup found.
#[derive(Debug, PartialEq)]
pub enum Lookup<'a> {
    /// The key is new.
    New,
    /// The same command was already applied with this key; here is its
    /// response.
    Replay(&'a CommandResponse),
    /// The key was used for a different command.
    Conflict,
}

impl Default for RecentRequests {
    fn default() -> Self {
        RecentRequests::with_capacity(DEFAULT_CAPACITY)
    }
}

impl RecentRequests {
    /// An empty memory for `capacity` requests (at least one).
    pub fn with_capacity(capacity: usize) -> RecentRequests {
        RecentRequests { capacity: capacity.max(1), order: VecDeque::new(), by_key: HashMap::new() }
    }

    /// How many requests are remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The most requests remembered at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Looks `key` up for `fingerprint` (see [`fingerprint`]).
    pub fn lookup(&self, key: &IdempotencyKey, fingerprint: u64) -> Lookup<'_> {
        match self.by_key.get(key) {
            None => Lookup::New,
            Some(seen) if seen.fingerprint == fingerprint => Lookup::Replay(&seen.response),
            Some(_) => Lookup::Conflict,
        }
    }

    /// The response remembered for `key`, whatever command it came with.
    pub fn response(&self, key: &IdempotencyKey) -> Option<&CommandResponse> {
        self.by_key.get(key).map(|seen| &seen.response)
    }

    /// Remembers a new key's response, forgetting the oldest beyond the
    /// capacity.
    pub fn remember(&mut self, key: IdempotencyKey, fingerprint: u64, response: CommandResponse) {
        if self.by_key.insert(key.clone(), Remembered { fingerprint, response }).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.by_key.remove(&oldest);
            }
        }
    }
}

/// A stable 64-bit fingerprint of a command (FNV-1a over its JSON form).
/// Identical on every node and platform, unlike `std`'s randomly seeded
/// hasher.
pub fn fingerprint(command: &Command) -> u64 {
    // Serializing plain data to JSON cannot fail; were it to, every node
    // would hash the same empty input, so the outcome stays deterministic.
    let bytes = serde_json::to_vec(command).unwrap_or_default();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The serialized form: capacity and the remembered requests, oldest first.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored<E> {
    capacity: usize,
    entries: Vec<E>,
}

#[derive(Serialize)]
struct EntryRef<'a> {
    key: &'a IdempotencyKey,
    #[serde(flatten)]
    remembered: &'a Remembered,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    key: IdempotencyKey,
    fingerprint: u64,
    response: CommandResponse,
}

impl Serialize for RecentRequests {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let entries: Vec<EntryRef<'_>> = self
            .order
            .iter()
            .filter_map(|key| self.by_key.get(key).map(|remembered| EntryRef { key, remembered }))
            .collect();
        Stored { capacity: self.capacity, entries }.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RecentRequests {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let stored = Stored::<Entry>::deserialize(deserializer)?;
        let mut requests = RecentRequests::with_capacity(stored.capacity);
        for entry in stored.entries {
            requests.remember(entry.key, entry.fingerprint, entry.response);
        }
        Ok(requests)
    }
}
