//! The byte layout of keyed state in a backend — the one place it is written down.
//!
//! ```text
//! key   := key_group:u16 BE ‖ state_id:u16 BE ‖ key_len:u32 BE ‖ key ‖ [0x01 ‖ user_key]
//! value := expiry:i64 BE ‖ payload          (expiry = i64::MAX: never)
//! list payload := (len:u32 BE ‖ element)*
//! ```
//! Map entries carry the `0x01` marker and the user key; value and list state end at the
//! key. Snapshots store raw entries, so this layout is also part of the savepoint format.

/// Marks a map entry's user key.
pub const MAP_MARKER: u8 = 0x01;

/// Expiry of an entry that never expires.
pub const NO_EXPIRY: i64 = i64::MAX;

/// The prefix of every entry of `state` for `key` in `group`.
pub fn prefix(group: u16, state: u16, key: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + key.len());
    p.extend_from_slice(&group.to_be_bytes());
    p.extend_from_slice(&state.to_be_bytes());
    p.extend_from_slice(&(key.len() as u32).to_be_bytes());
    p.extend_from_slice(key);
    p
}

/// The key group of a raw key (its first two bytes).
pub fn key_group_of(raw: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*raw.first()?, *raw.get(1)?]))
}

/// The state id of a raw key.
pub fn state_id_of(raw: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*raw.get(2)?, *raw.get(3)?]))
}

/// `raw` with its state id replaced (restoring into a store that numbered states anew).
pub fn with_state_id(raw: &[u8], id: u16) -> Option<Vec<u8>> {
    let mut k = raw.to_vec();
    k.get_mut(2..4)?.copy_from_slice(&id.to_be_bytes());
    Some(k)
}

/// A raw key taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawKey<'a> {
    /// Key group.
    pub group: u16,
    /// State id.
    pub state: u16,
    /// The record key.
    pub key: &'a [u8],
    /// The map entry's user key (map state only).
    pub user_key: Option<&'a [u8]>,
}

/// Take a raw key apart; `None` when it does not follow the layout.
pub fn parse_key(raw: &[u8]) -> Option<RawKey<'_>> {
    let group = key_group_of(raw)?;
    let state = state_id_of(raw)?;
    let klen = u32::from_be_bytes(raw.get(4..8)?.try_into().ok()?) as usize;
    let key = raw.get(8..8 + klen)?;
    let rest = raw.get(8 + klen..)?;
    let user_key = match rest.split_first() {
        None => None,
        Some((&MAP_MARKER, uk)) => Some(uk),
        Some(_) => return None,
    };
    Some(RawKey { group, state, key, user_key })
}

/// A stored value: the expiry header and the payload.
pub fn wrap_value(payload: &[u8], expiry: i64) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + payload.len());
    v.extend_from_slice(&expiry.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// A stored value's expiry and payload; `None` when shorter than its header.
pub fn split_value(stored: &[u8]) -> Option<(i64, &[u8])> {
    let e: [u8; 8] = stored.get(..8)?.try_into().ok()?;
    Some((i64::from_be_bytes(e), &stored[8..]))
}

/// Encode list elements.
pub fn encode_list<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut raw = Vec::new();
    for v in items {
        push_list_element(&mut raw, v);
    }
    raw
}

/// Append one element to an encoded list.
pub fn push_list_element(raw: &mut Vec<u8>, value: &[u8]) {
    raw.extend_from_slice(&(value.len() as u32).to_be_bytes());
    raw.extend_from_slice(value);
}

/// Decode list elements; `None` when truncated.
pub fn decode_list(raw: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < raw.len() {
        let len = u32::from_be_bytes(raw.get(pos..pos + 4)?.try_into().ok()?) as usize;
        pos += 4;
        out.push(raw.get(pos..pos + len)?.to_vec());
        pos += len;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        let mut k = prefix(7, 3, b"key");
        assert_eq!(parse_key(&k), Some(RawKey { group: 7, state: 3, key: b"key", user_key: None }));
        k.push(MAP_MARKER);
        k.extend_from_slice(b"uk");
        assert_eq!(parse_key(&k).and_then(|r| r.user_key), Some(&b"uk"[..]));
        assert_eq!(parse_key(&with_state_id(&k, 9).expect("long enough")).map(|r| r.state), Some(9));
        let v = wrap_value(b"payload", 42);
        assert_eq!(split_value(&v), Some((42, &b"payload"[..])));
        let list = encode_list([&b"a"[..], b"bc"]);
        assert_eq!(decode_list(&list), Some(vec![b"a".to_vec(), b"bc".to_vec()]));
        assert_eq!(decode_list(&list[..list.len() - 1]), None);
    }
}
